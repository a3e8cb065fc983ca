"""A function fed by an event source mapping (nimbus sources create ...).

It gets a batch of messages as {"Records": [...]}, each record's "body"
being one message's JSON. It adds up their "amount" and reports the
messages it cannot handle in batchItemFailures: only those are retried,
and once their retries are spent they go to the mapping's dead-letter
destination while the rest of the stream goes on.
"""


def handler(event, context):
    total = 0
    failures = []
    for record in event["Records"]:
        amount = record["body"].get("amount") if isinstance(record["body"], dict) else None
        if not isinstance(amount, (int, float)):
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        total += amount
    print(f"{len(event['Records'])} messages, total {total}, {len(failures)} failed")
    return {"batchItemFailures": failures}
