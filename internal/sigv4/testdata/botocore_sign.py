"""Signs Lambda-shaped requests with botocore's own SigV4 signer.

Two sets: requests built by hand (AWSRequest signed by SigV4Auth), and
requests the real Lambda client (botocore's serializer and its whole
send path) makes, captured before they would go out.

Usage: botocore_sign.py BASE_URL ACCESS_KEY_ID SECRET TIMESTAMP
(TIMESTAMP is X-Amz-Date's form, 20240102T030405Z). Prints a JSON list of
{"name", "method", "url", "headers", "body"}: each request exactly as
botocore would send it, signed as of TIMESTAMP for lambda in us-east-1.
The Go test (TestBotocoreSignaturesVerify) sends them back to a server of
its own and verifies them there.
"""

import datetime
import json
import sys

import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials
from botocore.utils import percent_encode

base, access_key, secret, stamp = sys.argv[1:5]
fixed = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")


class FixedClock(datetime.datetime):
    """Stands in for datetime.datetime so the signer sees TIMESTAMP."""

    @classmethod
    def utcnow(cls):
        return fixed

    @classmethod
    def now(cls, tz=None):
        return fixed if tz is None else fixed.replace(tzinfo=tz)


botocore.auth.datetime.datetime = FixedClock

# botocore's rest-json serializer encodes a non-greedy path parameter
# with percent_encode (safe: - _ . ~), so "my-fn:1" travels as my-fn%3A1.
qualified = percent_encode("my-fn:1")
invoke_body = json.dumps({"hello": "world", "n": 1}).encode()
config_body = json.dumps({"Timeout": 30, "MemorySize": 256}).encode()
json_headers = {"Content-Type": "application/json"}

cases = [
    ("list functions with a marker", "GET",
     "/2015-03-31/functions/?Marker=abc&MaxItems=2", {}, b""),
    ("invoke with a qualifier and an invocation type", "POST",
     "/2015-03-31/functions/my-fn/invocations?Qualifier=1",
     {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "Tail",
      **json_headers}, invoke_body),
    ("invoke a qualified name with a colon", "POST",
     "/2015-03-31/functions/" + qualified + "/invocations",
     json_headers, invoke_body),
    ("get a qualified function", "GET",
     "/2015-03-31/functions/" + qualified, {}, b""),
    ("update a function's configuration", "PUT",
     "/2015-03-31/functions/my-fn/configuration", json_headers, config_body),
    ("delete a function version", "DELETE",
     "/2015-03-31/functions/my-fn?Qualifier=2", {}, b""),
    ("list with a query value that needs encoding", "GET",
     "/2015-03-31/functions/?FunctionVersion=ALL&Marker=" +
     percent_encode("a b/c+d=e"), {}, b""),
]

signer = botocore.auth.SigV4Auth(
    Credentials(access_key, secret), "lambda", "us-east-1")
out = []
for name, method, path, headers, body in cases:
    req = AWSRequest(method=method, url=base + path, data=body,
                     headers=dict(headers))
    signer.add_auth(req)
    out.append({
        "name": name,
        "method": method,
        "url": req.url,
        "headers": dict(req.headers.items()),
        "body": body.decode(),
    })


class Raw:
    """The raw body of the empty answer the captured requests get."""

    def stream(self, **kwargs):
        yield b"{}"


def capture(request, **kwargs):
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    headers = {k: v.decode() if isinstance(v, bytes) else v
               for k, v in request.headers.items()}
    out.append({"name": "the Lambda client's " + capture.name,
                "method": request.method, "url": request.url,
                "headers": headers, "body": body.decode()})
    return AWSResponse(request.url, 200, {}, Raw())


client = botocore.session.get_session().create_client(
    "lambda", region_name="us-east-1", endpoint_url=base,
    aws_access_key_id=access_key, aws_secret_access_key=secret)
client.meta.events.register("before-send.lambda", capture)
capture.name = "invoke of my-fn:1"
client.invoke(FunctionName="my-fn:1", Payload=invoke_body,
              InvocationType="Event", LogType="Tail")
capture.name = "list_functions"
client.list_functions(Marker="x y", MaxItems=2)
capture.name = "update_function_configuration"
client.update_function_configuration(FunctionName="my-fn", Timeout=30)
capture.name = "delete_function"
client.delete_function(FunctionName="my-fn", Qualifier="2")

json.dump(out, sys.stdout)
