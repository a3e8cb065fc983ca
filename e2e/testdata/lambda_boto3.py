"""Drives Nimbus's Lambda API with boto3, as a user of AWS Lambda would.

Run by e2e/lambda_api_test.go with Debian's /usr/bin/python3 against a
real `nimbus dev`. It reads from the environment:

  LAMBDA_ENDPOINT   the API's URL
  AWS_DEFAULT_REGION
  DEV_ID, DEV_SECRET        a developer key's AWS credentials
  VIEWER_ID, VIEWER_SECRET  a viewer key's (same namespace)
  OTHER_ID                  another key's id
  ACCOUNT                   the namespace's account id

Each step prints a line; a failed check raises (exit 1 with the
traceback). The last line is JSON with what the Go test checks further.
"""

import base64
import datetime
import io
import json
import os
import sys
import urllib.error
import urllib.request
import zipfile
from unittest import mock

import boto3
import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT = os.environ["LAMBDA_ENDPOINT"]
REGION = os.environ["AWS_DEFAULT_REGION"]
ACCOUNT = os.environ["ACCOUNT"]
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120)

HANDLER = """
import os

def handler(event, context):
    print("hello from", context.function_name, "version", context.function_version)
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"greeting": os.environ.get("GREETING", "hi"), "version": context.function_version, "event": event}
"""


def client(key_id, secret):
    return boto3.client("lambda", endpoint_url=ENDPOINT, region_name=REGION,
                        aws_access_key_id=key_id, aws_secret_access_key=secret, config=NO_RETRY)


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, body in files.items():
            z.writestr(name, body)
    return buf.getvalue()


def step(msg):
    print("--", msg, flush=True)


def expect_error(code, fn, *args, **kwargs):
    """Calls fn and returns the ClientError it must raise with code."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"want {code}, got {got}: {e}"
        return e
    raise AssertionError(f"want {code}, the call succeeded")


def raw(method, path, body, key_id, secret, headers=None):
    """Sends a request signed with botocore's own SigV4 signer: for bodies
    boto3 would never send."""
    if isinstance(body, str):
        body = body.encode()
    req = AWSRequest(method=method, url=ENDPOINT + path, data=body,
                     headers={"Content-Type": "application/json", **(headers or {})})
    botocore.auth.SigV4Auth(Credentials(key_id, secret), "lambda", REGION).add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=p.body, headers=dict(p.headers), method=method)
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def main():
    lam = client(os.environ["DEV_ID"], os.environ["DEV_SECRET"])
    code = zip_of({"main.py": HANDLER})
    out = {}

    step("CreateFunction")
    created = lam.create_function(
        FunctionName="hello", Runtime="python3.11", Role="arn:aws:iam::123456789012:role/ignored",
        Handler="main.handler", Code={"ZipFile": code}, Description="says hello", Timeout=10, MemorySize=256,
        Environment={"Variables": {"GREETING": "hello"}}, Tags={"team": "a"})
    assert created["FunctionName"] == "hello", created
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello", created["FunctionArn"]
    assert created["Version"] == "$LATEST" and created["State"] == "Active", created
    assert created["LastUpdateStatus"] == "Successful", created
    import hashlib
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode(), created["CodeSha256"]
    assert created["CodeSize"] == len(code) and created["MemorySize"] == 256 and created["Timeout"] == 10, created
    assert created["Environment"]["Variables"] == {"GREETING": "hello"}, created
    datetime.datetime.strptime(created["LastModified"], "%Y-%m-%dT%H:%M:%S.%f%z")
    for name in ("second", "third"):
        lam.create_function(FunctionName=name, Runtime="python3.11", Role="r", Handler="main.handler",
                            Code={"ZipFile": code}, Publish=True)

    step("GetFunction (by name and by ARN), GetFunctionConfiguration")
    got = lam.get_function(FunctionName="hello")
    assert got["Configuration"]["Description"] == "says hello", got
    assert got["Tags"] == {"team": "a"}, got["Tags"]
    by_arn = lam.get_function_configuration(FunctionName=created["FunctionArn"])
    assert by_arn["RevisionId"] == got["Configuration"]["RevisionId"], by_arn
    expect_error("ResourceNotFoundException", lam.get_function, FunctionName="nothing-here")
    try:
        lam.get_function(FunctionName="nothing-here")
    except lam.exceptions.ResourceNotFoundException:
        pass

    step("ListFunctions, one at a time")
    names, marker = [], None
    while True:
        kw = {"MaxItems": 1}
        if marker:
            kw["Marker"] = marker
        page = lam.list_functions(**kw)
        assert len(page["Functions"]) <= 1, page
        names += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert names == ["hello", "second", "third"], names
    paginated = [f["FunctionName"] for p in lam.get_paginator("list_functions").paginate() for f in p["Functions"]]
    assert paginated == names, paginated

    step("Invoke RequestResponse with the log's tail")
    r = lam.invoke(FunctionName="hello", Payload=json.dumps({"n": 1}), LogType="Tail")
    assert r["StatusCode"] == 200 and "FunctionError" not in r, r
    body = json.loads(r["Payload"].read())
    assert body["greeting"] == "hello" and body["event"] == {"n": 1}, body
    log = base64.b64decode(r["LogResult"]).decode()
    assert "hello from hello version" in log and "REPORT RequestId:" in log, log
    assert r["ExecutedVersion"] == "$LATEST", r

    step("Invoke with a function error")
    r = lam.invoke(FunctionName="hello", Payload=json.dumps({"fail": True}))
    assert r["FunctionError"] == "Unhandled", r
    err = json.loads(r["Payload"].read())
    assert err["errorType"] == "ValueError" and err["errorMessage"] == "asked to fail", err

    step("Invoke Event and DryRun")
    # On "second": hello's 2,000 invokes below would push its record out
    # of the records kept per function.
    r = lam.invoke(FunctionName="second", InvocationType="Event", Payload=json.dumps({"async": True}))
    assert r["StatusCode"] == 202, r
    out["event_request_id"] = r["ResponseMetadata"]["RequestId"]
    r = lam.invoke(FunctionName="hello", InvocationType="DryRun")
    assert r["StatusCode"] == 204, r

    step("UpdateFunctionConfiguration, UpdateFunctionCode")
    before = lam.get_function_configuration(FunctionName="hello")["RevisionId"]
    upd = lam.update_function_configuration(FunctionName="hello", Environment={"Variables": {"GREETING": "hej"}},
                                            MemorySize=512, RevisionId=before)
    assert upd["MemorySize"] == 512 and upd["RevisionId"] != before, upd
    expect_error("PreconditionFailedException", lam.update_function_configuration, FunctionName="hello",
                 Timeout=5, RevisionId=before)
    r = json.loads(lam.invoke(FunctionName="hello", Payload=b"{}")["Payload"].read())
    assert r["greeting"] == "hej", r
    code2 = zip_of({"main.py": HANDLER.replace('"hi"', '"v2"')})
    upd = lam.update_function_code(FunctionName="hello", ZipFile=code2, Publish=True)
    assert upd["Version"] == "1" and upd["CodeSize"] == len(code2), upd

    step("PublishVersion, ListVersionsByFunction")
    lam.update_function_configuration(FunctionName="hello", Environment={"Variables": {"GREETING": "second"}})
    v2 = lam.publish_version(FunctionName="hello", Description="two")
    assert v2["Version"] == "2" and v2["FunctionArn"].endswith(":hello:2"), v2
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName="hello")["Versions"]]
    assert versions == ["$LATEST", "1", "2"], versions
    page = lam.list_versions_by_function(FunctionName="hello", MaxItems=2)
    assert [v["Version"] for v in page["Versions"]] == ["$LATEST", "1"] and page["NextMarker"], page
    rest = lam.list_versions_by_function(FunctionName="hello", Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2"], rest
    r = lam.invoke(FunctionName="hello", Qualifier="1", Payload=b"{}")
    assert r["ExecutedVersion"] == "1" and json.loads(r["Payload"].read())["greeting"] == "hej", r

    step("Aliases, and a weighted routing over 2,000 invokes")
    a = lam.create_alias(FunctionName="hello", Name="live", FunctionVersion="1", Description="what runs")
    assert a["AliasArn"].endswith(":function:hello:live") and a["FunctionVersion"] == "1", a
    expect_error("ResourceConflictException", lam.create_alias, FunctionName="hello", Name="live", FunctionVersion="1")
    a = lam.update_alias(FunctionName="hello", Name="live",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}})
    assert a["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.3} and a["FunctionVersion"] == "1", a
    assert lam.get_alias(FunctionName="hello", Name="live")["RoutingConfig"] == a["RoutingConfig"]
    assert [x["Name"] for x in lam.list_aliases(FunctionName="hello")["Aliases"]] == ["live"]
    counts = {}
    for _ in range(2000):
        v = lam.invoke(FunctionName="hello:live", Payload=b"{}")["ExecutedVersion"]
        counts[v] = counts.get(v, 0) + 1
    share = counts.get("2", 0) / 2000
    print("   executed versions:", counts, flush=True)
    assert set(counts) <= {"1", "2"} and abs(share - 0.3) <= 0.05, counts
    got = lam.get_function(FunctionName="hello", Qualifier="live")["Configuration"]
    assert got["Version"] == "1", got

    step("Bad input")
    expect_error("InvalidParameterValueException", lam.update_alias, FunctionName="hello", Name="live",
                 RoutingConfig={"AdditionalVersionWeights": {"2": 1.5}})
    expect_error("InvalidParameterValueException", lam.update_alias, FunctionName="hello", Name="live",
                 RoutingConfig={"AdditionalVersionWeights": {"2": 0.1, "3": 0.1}})
    try:
        lam.create_function(FunctionName="nodot", Runtime="python3.11", Role="r", Handler="handler",
                            Code={"ZipFile": code})
        raise AssertionError("a handler without a dot was taken")
    except lam.exceptions.InvalidParameterValueException as e:
        assert "MODULE.FUNCTION" in str(e), e
    e = expect_error("InvalidParameterValueException", lam.create_function, FunctionName="vpc", Runtime="python3.11",
                     Role="r", Handler="main.handler", Code={"ZipFile": code},
                     VpcConfig={"SubnetIds": ["subnet-1"], "SecurityGroupIds": []})
    assert "VpcConfig" in str(e), e
    e = expect_error("InvalidParameterValueException", lam.create_function, FunctionName="ruby", Runtime="ruby3.2",
                     Role="r", Handler="main.handler", Code={"ZipFile": code})
    assert "ruby3.2" in str(e), e
    e = expect_error("InvalidParameterValueException", lam.create_function, FunctionName="Upper_Case",
                     Runtime="python3.11", Role="r", Handler="main.handler", Code={"ZipFile": code})
    assert "Nimbus" in str(e), e
    expect_error("ResourceConflictException", lam.create_function, FunctionName="hello", Runtime="python3.11",
                 Role="r", Handler="main.handler", Code={"ZipFile": code})
    expect_error("ResourceNotFoundException", lam.invoke, FunctionName="hello", Qualifier="9", Payload=b"{}")
    expect_error("ResourceNotFoundException", lam.invoke, FunctionName="hello", Qualifier="nosuchalias", Payload=b"{}")
    status, headers, body = raw("POST", "/2015-03-31/functions",
                                json.dumps({"FunctionName": "badzip", "Role": "r", "Handler": "main.handler",
                                            "Runtime": "python3.11", "Code": {"ZipFile": "%%% not base64 %%%"}}),
                                os.environ["DEV_ID"], os.environ["DEV_SECRET"])
    assert status == 400 and headers["X-Amzn-ErrorType"] == "InvalidParameterValueException", (status, body)
    assert b"ZipFile" in body, body
    e = expect_error("InvalidParameterValueException", lam.create_function, FunctionName="notzip", Runtime="python3.11",
                     Role="r", Handler="main.handler", Code={"ZipFile": b"this is not a zip"})
    status, headers, body = raw("POST", "/2015-03-31/functions/hello/policy", "{}",
                                os.environ["DEV_ID"], os.environ["DEV_SECRET"])
    assert status == 404 and b"AddPermission" in body, (status, body)

    step("Concurrency")
    c = lam.put_function_concurrency(FunctionName="hello", ReservedConcurrentExecutions=5)
    assert c["ReservedConcurrentExecutions"] == 5, c
    assert lam.get_function_concurrency(FunctionName="hello")["ReservedConcurrentExecutions"] == 5
    assert lam.get_function(FunctionName="hello")["Concurrency"]["ReservedConcurrentExecutions"] == 5
    lam.put_function_concurrency(FunctionName="hello", ReservedConcurrentExecutions=0)
    e = expect_error("TooManyRequestsException", lam.invoke, FunctionName="hello", Payload=b"{}")
    assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded", e.response
    lam.delete_function_concurrency(FunctionName="hello")
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName="hello")

    step("Event invoke config")
    expect_error("ResourceNotFoundException", lam.get_function_event_invoke_config, FunctionName="hello")
    second_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:second"
    eic = lam.put_function_event_invoke_config(FunctionName="hello", MaximumRetryAttempts=1,
                                               MaximumEventAgeInSeconds=120,
                                               DestinationConfig={"OnFailure": {"Destination": second_arn}})
    assert eic["MaximumRetryAttempts"] == 1 and eic["MaximumEventAgeInSeconds"] == 120, eic
    assert eic["DestinationConfig"]["OnFailure"]["Destination"] == second_arn, eic
    eic = lam.update_function_event_invoke_config(FunctionName="hello", MaximumRetryAttempts=0)
    assert eic["MaximumRetryAttempts"] == 0 and eic["MaximumEventAgeInSeconds"] == 120, eic
    got = lam.get_function_event_invoke_config(FunctionName="hello")
    assert got["DestinationConfig"]["OnFailure"]["Destination"] == second_arn, got
    e = expect_error("InvalidParameterValueException", lam.put_function_event_invoke_config, FunctionName="hello",
                     DestinationConfig={"OnFailure": {"Destination": f"arn:aws:sqs:{REGION}:{ACCOUNT}:queue"}})
    assert "SQS" in str(e), e
    lam.delete_function_event_invoke_config(FunctionName="hello")
    expect_error("ResourceNotFoundException", lam.get_function_event_invoke_config, FunctionName="hello")

    step("Tags")
    arn = created["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags={"env": "test", "team": "b"})
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "test", "team": "b"}
    lam.untag_resource(Resource=arn, TagKeys=["team"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "test"}

    step("Account settings")
    acct = lam.get_account_settings()
    assert acct["AccountUsage"]["FunctionCount"] == 3, acct

    step("Signatures refused")
    expect_error("InvalidSignatureException", client(os.environ["DEV_ID"], "x" * 40).list_functions)
    expect_error("InvalidSignatureException", client(os.environ["OTHER_ID"], os.environ["DEV_SECRET"]).list_functions)
    expect_error("UnrecognizedClientException", client("000000000000", os.environ["DEV_SECRET"]).list_functions)
    real = datetime.datetime

    class TenMinutesAgo(real):
        @classmethod
        def utcnow(cls):
            return real.utcnow() - datetime.timedelta(minutes=10)

        @classmethod
        def now(cls, tz=None):
            return real.now(tz) - datetime.timedelta(minutes=10)

    with mock.patch.object(botocore.auth.datetime, "datetime", TenMinutesAgo):
        e = expect_error("InvalidSignatureException", lam.list_functions)
    assert "expired" in str(e).lower() or "clock" in str(e), e
    viewer = client(os.environ["VIEWER_ID"], os.environ["VIEWER_SECRET"])
    assert [f["FunctionName"] for f in viewer.list_functions()["Functions"]] == ["hello", "second", "third"]
    expect_error("AccessDeniedException", viewer.create_function, FunctionName="nope", Runtime="python3.11",
                 Role="r", Handler="main.handler", Code={"ZipFile": code})

    step("Delete")
    expect_error("ResourceConflictException", lam.delete_function, FunctionName="hello", Qualifier="1")
    lam.delete_alias(FunctionName="hello", Name="live")
    lam.delete_function(FunctionName="hello", Qualifier="1")
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName="hello")["Versions"]]
    assert versions == ["$LATEST", "2"], versions
    lam.delete_function(FunctionName="third")
    expect_error("ResourceNotFoundException", lam.get_function, FunctionName="third")

    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
