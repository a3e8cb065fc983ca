package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// awsCredentials are a key's AWS credentials as `nimbus keys
// aws-credentials -o json` prints them.
type awsCredentials struct {
	ID     string `json:"access_key_id"`
	Secret string `json:"secret_access_key"`
}

func (n *devNode) awsCredentials(t *testing.T, key client.Key) awsCredentials {
	t.Helper()
	r := n.mustCLI(0, "keys", "aws-credentials", "-o", "json", key.Secret)
	var c awsCredentials
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.ID != key.ID || len(c.Secret) != 40 {
		t.Fatalf("keys aws-credentials: %q (%v)", r.stdout, err)
	}
	return c
}

// lambdaAccount is namespace ns's account id in the Lambda API's ARNs,
// by the rule docs/spec.md §15 states.
func lambdaAccount(ns string) string {
	sum := sha256.Sum256([]byte("nimbus lambda account " + ns))
	return fmt.Sprintf("%012d", binary.BigEndian.Uint64(sum[:8])%1_000_000_000_000)
}

// needTool fails (never skips) when a tool scripts/deps installs is
// missing.
func needTool(t *testing.T, path, check string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v): run ./scripts/deps", path, err)
	}
	if check != "" {
		if out, err := exec.Command(path, "-c", check).CombinedOutput(); err != nil {
			t.Fatalf("%s -c %q: %v\n%s\nrun ./scripts/deps", path, check, err, out)
		}
	}
}

// TestLambdaAPIThroughBoto3AndTheAWSCLI drives the Lambda-compatible API
// of a real nimbus dev with boto3 (e2e/testdata/lambda_boto3.py: the
// lifecycle, versions, a weighted alias over 2,000 invokes, concurrency,
// event invoke config, tags, errors as botocore's exceptions, refused
// signatures and bad input) and with the AWS CLI, both unmodified but
// for --endpoint-url.
func TestLambdaAPIThroughBoto3AndTheAWSCLI(t *testing.T) {
	parallel(t)
	needTool(t, "/usr/bin/python3", "import boto3")
	needTool(t, "/usr/bin/aws", "")
	const region = "eu-west-3" // not the default: the ARNs are the flag's
	n := startDev(t, t.TempDir(), "--lambda-region", region)
	dev := n.awsCredentials(t, n.newKey(t, "--role", "developer"))
	viewer := n.awsCredentials(t, n.newKey(t, "--role", "viewer"))
	other := n.newKey(t, "--role", "developer")

	home := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(home, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := func(c awsCredentials) []string {
		return append(os.Environ(), "HOME="+home, "AWS_CONFIG_FILE="+filepath.Join(home, "config"),
			"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"), "AWS_DEFAULT_REGION="+region,
			"AWS_ACCESS_KEY_ID="+c.ID, "AWS_SECRET_ACCESS_KEY="+c.Secret, "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true",
			"LAMBDA_ENDPOINT="+n.url, "ACCOUNT="+lambdaAccount("default"))
	}

	t.Run("boto3", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/lambda_boto3.py")
		cmd.Env = append(env(dev), "DEV_ID="+dev.ID, "DEV_SECRET="+dev.Secret,
			"VIEWER_ID="+viewer.ID, "VIEWER_SECRET="+viewer.Secret, "OTHER_ID="+other.ID)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		t.Logf("lambda_boto3.py:\n%s%s", out, stderr.String())
		if err != nil {
			t.Fatalf("lambda_boto3.py: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var res struct {
			EventRequestID string `json:"event_request_id"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.EventRequestID == "" {
			t.Fatalf("the script's last line %q is not its result (%v)", lines[len(lines)-1], err)
		}
		// The Event invoke reached the queue and ran: its record says so.
		var inv client.Invocation
		waitFor(t, patience, "the Event invoke's record to succeed", func() bool {
			status, _, body := n.do("GET", "/v1/invocations/"+res.EventRequestID, "", nil)
			return status == 200 && json.Unmarshal(body, &inv) == nil && inv.Status == "success"
		})
		if inv.Function != "second" || inv.Trigger != "async" {
			t.Fatalf("the Event invoke's record: %+v", inv)
		}
	})

	t.Run("aws CLI", func(t *testing.T) {
		dir := t.TempDir()
		zipPath := filepath.Join(dir, "code.zip")
		if err := os.WriteFile(zipPath, zipOf(t, map[string]string{"app.py": "def run(event, context):\n    print('cli says hi')\n    return {'got': event}\n"}), 0o644); err != nil {
			t.Fatal(err)
		}
		aws := func(c awsCredentials, want int, args ...string) string {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "/usr/bin/aws", append([]string{"lambda", "--endpoint-url", n.url, "--output", "json"}, args...)...)
			cmd.Env, cmd.Dir = env(c), dir
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if (want == 0) != (code == 0) {
				t.Fatalf("aws lambda %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
			}
			return stdout.String() + stderr.String()
		}
		decode := func(s string, v any) {
			t.Helper()
			if err := json.Unmarshal([]byte(s), v); err != nil {
				t.Fatalf("%q: %v", s, err)
			}
		}

		var fn struct{ FunctionName, FunctionArn, Handler, Version string }
		decode(aws(dev, 0, "create-function", "--function-name", "from-cli", "--runtime", "python3.11",
			"--role", "arn:aws:iam::000000000000:role/x", "--handler", "app.run", "--zip-file", "fileb://"+zipPath), &fn)
		if fn.FunctionArn != "arn:aws:lambda:"+region+":"+lambdaAccount("default")+":function:from-cli" || fn.Handler != "app.run" {
			t.Fatalf("create-function: %+v", fn)
		}
		var got struct{ Configuration struct{ FunctionName string } }
		decode(aws(dev, 0, "get-function", "--function-name", fn.FunctionArn), &got)
		if got.Configuration.FunctionName != "from-cli" {
			t.Fatalf("get-function: %+v", got)
		}
		// The CLI pages through NextMarker by itself, one function a page.
		var list struct {
			Functions []struct{ FunctionName string }
		}
		decode(aws(dev, 0, "list-functions", "--page-size", "1"), &list)
		var names []string
		for _, f := range list.Functions {
			names = append(names, f.FunctionName)
		}
		if strings.Join(names, ",") != "from-cli,hello,second" {
			t.Fatalf("list-functions: %v", names)
		}
		var inv struct {
			StatusCode                 int
			LogResult, ExecutedVersion string
		}
		decode(aws(dev, 0, "invoke", "--function-name", "from-cli", "--cli-binary-format", "raw-in-base64-out",
			"--payload", `{"a":1}`, "--log-type", "Tail", filepath.Join(dir, "out.json")), &inv)
		result, _ := os.ReadFile(filepath.Join(dir, "out.json"))
		if inv.StatusCode != 200 || inv.ExecutedVersion != "$LATEST" || strings.TrimSpace(string(result)) != `{"got": {"a": 1}}` {
			t.Fatalf("invoke: %+v %s", inv, result)
		}
		aws(dev, 0, "update-function-configuration", "--function-name", "from-cli", "--timeout", "20")
		var v struct{ Version string }
		decode(aws(dev, 0, "publish-version", "--function-name", "from-cli"), &v)
		if v.Version != "1" {
			t.Fatalf("publish-version: %+v", v)
		}
		aws(dev, 0, "create-alias", "--function-name", "from-cli", "--name", "prod", "--function-version", "1")
		aws(dev, 0, "tag-resource", "--resource", fn.FunctionArn, "--tags", "owner=cli")
		if out := aws(dev, 0, "list-tags", "--resource", fn.FunctionArn); !strings.Contains(out, `"owner": "cli"`) {
			t.Fatalf("list-tags: %s", out)
		}
		if out := aws(viewer, 1, "delete-function", "--function-name", "from-cli"); !strings.Contains(out, "AccessDeniedException") {
			t.Fatalf("a viewer's delete-function: %s", out)
		}
		if out := aws(dev, 1, "get-function", "--function-name", "nothing"); !strings.Contains(out, "ResourceNotFoundException") {
			t.Fatalf("get-function of nothing: %s", out)
		}

		// Another namespace is another account: its key sees none of
		// default's functions, not even by ARN.
		n.mustCLI(0, "namespaces", "create", "other")
		elsewhere := n.awsCredentials(t, n.newKey(t, "--role", "developer", "--namespace", "other"))
		if out := aws(elsewhere, 0, "list-functions"); !strings.Contains(out, `"Functions": []`) {
			t.Fatalf("another namespace's list-functions: %s", out)
		}
		if out := aws(elsewhere, 1, "get-function", "--function-name", fn.FunctionArn); !strings.Contains(out, "ResourceNotFoundException") {
			t.Fatalf("another namespace's get-function by ARN: %s", out)
		}

		aws(dev, 0, "delete-alias", "--function-name", "from-cli", "--name", "prod")
		aws(dev, 0, "delete-function", "--function-name", "from-cli")
		if out := aws(dev, 1, "get-function", "--function-name", "from-cli"); !strings.Contains(out, "ResourceNotFoundException") {
			t.Fatalf("get-function after delete-function: %s", out)
		}
	})
}
