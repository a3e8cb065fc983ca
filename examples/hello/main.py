"""The quickstart function: greets whoever the event names."""
import os


def handler(event, context):
    name = (event or {}).get("name", "world")
    greeting = os.environ.get("GREETING", "Hello")
    print(f"greeting {name} from {context.function_name}")
    return {"message": f"{greeting}, {name}!"}
