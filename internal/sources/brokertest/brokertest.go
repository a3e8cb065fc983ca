// Package brokertest starts real message brokers for tests and
// benchmarks: RabbitMQ and NATS (with JetStream) as processes of their
// Debian packages, on free loopback ports with their own data
// directories, and Kafka as franz-go's in-process cluster (kfake), since
// Kafka has no Debian package. Each broker stops when its T's cleanups
// run (a test's end). A broker that cannot start fails the T with the
// broker's own log: it never skips. Broker.Queues is a test's RabbitMQ
// client (declare, publish with confirms, drain, count).
package brokertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"nimbus/internal/waitfor"
)

// T is what the starters need of their caller: the part of testing.TB
// they use. *testing.T and *testing.B satisfy it; a program that is not
// a test (bench/triggers) passes a type of its own whose Fatalf does
// not return either (bench/triggers panics and recovers around the
// start) and whose Cleanup runs its functions, last first, when the
// program is done with the brokers.
type T interface {
	Helper()
	// Fatalf reports the error and does not return.
	Fatalf(format string, args ...any)
	// Errorf reports an error and returns.
	Errorf(format string, args ...any)
	// Cleanup registers f to run when the caller is done, last first.
	Cleanup(f func())
	// TempDir is a new directory removed at cleanup.
	TempDir() string
}

// Broker is a broker process that a test can stop and start again on the
// same port and data directory (a broker restart).
type Broker struct {
	t    T
	name string
	// URL is where clients reach it.
	URL   string
	cmd   func() *exec.Cmd
	ready func() error
	log   string
	proc  *exec.Cmd
	// exited closes when proc has exited.
	exited chan struct{}
}

// freePort returns a loopback port nothing listens on now.
func freePort(t T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func need(t T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is not installed (%v): apt-get install %s (.ci/run installs it)", path, err, pkg)
	}
}

// RabbitMQ starts a RabbitMQ broker; its URL is amqp://guest:guest@127.0.0.1:PORT/.
// It runs as root from the package's own start script with everything
// under a temporary directory (the packaged wrapper switches to a user
// who cannot read a test's directory).
func RabbitMQ(t T) *Broker {
	t.Helper()
	const server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	need(t, server, "rabbitmq-server")
	dir := t.TempDir()
	port, dist := freePort(t), freePort(t)
	if err := os.WriteFile(filepath.Join(dir, "plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	node := fmt.Sprintf("nimbus%d_%d@localhost", os.Getpid(), port)
	b := &Broker{t: t, name: "rabbitmq", URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port), log: filepath.Join(dir, "broker.log")}
	b.cmd = func() *exec.Cmd {
		cmd := exec.Command(server)
		cmd.Env = append(os.Environ(), "HOME="+dir, "RABBITMQ_NODENAME="+node,
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1", "RABBITMQ_NODE_PORT="+strconv.Itoa(port), "RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"), "RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"), "RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "plugins"),
			"ERL_CRASH_DUMP="+filepath.Join(dir, "erl_crash.dump"))
		return cmd
	}
	b.ready = func() error {
		c, err := amqp.Dial(b.URL)
		if err != nil {
			return err
		}
		return c.Close()
	}
	b.Start()
	return b
}

// NATS starts a NATS server with JetStream; its URL is nats://127.0.0.1:PORT.
func NATS(t T) *Broker {
	t.Helper()
	server, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatalf("nats-server is not installed: apt-get install nats-server (.ci/run installs it)")
	}
	dir := t.TempDir()
	port := freePort(t)
	b := &Broker{t: t, name: "nats", URL: fmt.Sprintf("nats://127.0.0.1:%d", port), log: filepath.Join(dir, "broker.log")}
	b.cmd = func() *exec.Cmd {
		return exec.Command(server, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "js"))
	}
	b.ready = func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	b.Start()
	return b
}

// Start starts the broker (again) and waits until it accepts clients,
// failing the test with its log after a minute.
func (b *Broker) Start() {
	b.t.Helper()
	logf, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatalf("%v", err)
	}
	cmd := b.cmd()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: RabbitMQ's script starts the Erlang VM as a
	// child, which must go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.t.Fatalf("starting %s: %v", b.name, err)
	}
	logf.Close()
	exited := make(chan struct{})
	b.proc, b.exited = cmd, exited
	go func() { cmd.Wait(); close(exited) }()
	b.t.Cleanup(b.Stop)
	var last error
	ok := waitfor.Poll(time.Minute, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		last = b.ready()
		return last == nil
	})
	select {
	case <-exited:
		b.t.Fatalf("%s exited while starting; its log:\n%s", b.name, b.Log())
	default:
	}
	if !ok {
		b.t.Fatalf("%s did not accept clients within a minute (%v); its log:\n%s", b.name, last, b.Log())
	}
}

// Stop kills the broker's process group (not Erlang's epmd, which
// daemonizes and is shared) and waits for it to exit; stopping a stopped
// one does nothing.
func (b *Broker) Stop() {
	if b.proc == nil {
		return
	}
	syscall.Kill(-b.proc.Process.Pid, syscall.SIGKILL)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		b.t.Errorf("%s did not exit within 30 s of SIGKILL", b.name)
	}
	b.proc = nil
	if !waitfor.Poll(30*time.Second, func() bool { return b.ready() != nil }) {
		b.t.Errorf("%s still accepts clients 30 s after it was killed", b.name)
	}
}

// Pid is the id of the broker's process, which leads its process group
// (RabbitMQ's Erlang VM is in it); 0 while it is stopped.
func (b *Broker) Pid() int {
	if b.proc == nil {
		return 0
	}
	return b.proc.Process.Pid
}

// Log is what the broker wrote to its log so far.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(b.log)
	return string(out)
}

// Kafka starts an in-process Kafka cluster of one broker with topics
// already made, each with partitions partitions, and returns its
// bootstrap address (host:port).
func Kafka(t T, partitions int, topics ...string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topics...))
	if err != nil {
		t.Fatalf("starting the in-process Kafka cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}
