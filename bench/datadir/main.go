// Command datadir measures how a server's data directory grows under a
// sustained load of invocations: whether the Raft log (raft.db) stays
// bounded by what retention keeps, or grows with the invocations ever
// made (issue 22).
//
// It starts `nimbus dev` (built unless -bin names a binary) on a fresh
// data directory and a free 127.0.0.1 port, deploys one function that
// prints a line, and makes -n synchronous invocations at concurrency -c
// over keep-alive connections. Every tenth of the way it samples the
// sizes of raft.db, the Raft snapshots, the whole data directory, and
// the process's RSS; at the end it saves a backup through the API and
// reads from it the records retention keeps and the state's size (the
// snapshot). It reports the samples and, last, data_dir / state: the
// goal is a data directory at most twice the retained state. Nothing
// asserts it.
//
//	go run ./bench/datadir [-n 500000] [-c 32] [-records-per-function 1000] [-o json]
package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
	"nimbus/internal/backup"
)

// Sample is the data directory at one point of the run.
type Sample struct {
	Invocations int64   `json:"invocations"`
	RaftDBMB    float64 `json:"raft_db_mb"`
	SnapshotsMB float64 `json:"snapshots_mb"`
	DataDirMB   float64 `json:"data_dir_mb"`
	// DiskMB is what the data directory's files occupy on disk (their
	// allocated blocks, as du counts): bbolt grows its files in 16 MB
	// steps by truncation, and the part not written yet is a hole.
	DiskMB float64 `json:"disk_mb"`
	RSSMB  float64 `json:"rss_mb"`
}

// Result is the JSON form of a run (-o json).
type Result struct {
	Machine        stats.Machine `json:"machine"`
	Command        string        `json:"command"`
	Invocations    int64         `json:"invocations"`
	Failed         int64         `json:"failed"`
	Seconds        float64       `json:"seconds"`
	Samples        []Sample      `json:"samples"`
	RetainedRecs   int           `json:"retained_records"`
	StateMB        float64       `json:"state_mb"`
	DataDirMB      float64       `json:"data_dir_mb"`
	DataDirOverSt  float64       `json:"data_dir_over_state"`
	DiskMB         float64       `json:"disk_mb"`
	DiskOverSt     float64       `json:"disk_over_state"`
	GoalDataDirMax float64       `json:"goal_data_dir_over_state_max"`
}

func main() {
	n := flag.Int64("n", 500000, "invocations to make")
	c := flag.Int("c", 32, "concurrent invocations")
	keep := flag.Int("records-per-function", 1000, "the server's --records-per-function")
	bin := flag.String("bin", "", "the nimbus binary (default: build it)")
	format := flag.String("o", "table", "table or json")
	flag.Parse()
	stats.Main("datadir", *format, func(ctx context.Context) (Result, error) { return run(ctx, *bin, *n, *c, *keep) }, table)
}

func run(ctx context.Context, bin string, n int64, conc, keep int) (Result, error) {
	res := Result{Machine: stats.ThisMachine(), Command: strings.Join(os.Args, " "), GoalDataDirMax: 2}
	dir, err := os.MkdirTemp("", "nimbus-bench-datadir")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "nimbus")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/nimbus").CombinedOutput(); err != nil {
			return res, fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	addr, err := cluster.FreePort()
	if err != nil {
		return res, err
	}
	data := filepath.Join(dir, "data")
	logf, _ := os.Create(filepath.Join(dir, "dev.log"))
	cmd := exec.Command(bin, "dev", "--data", data, "--listen", addr, "--records-per-function", strconv.Itoa(keep))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		cmd.Wait()
	}()
	base := "http://" + addr
	var token string
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(data, "admin.token"))
		if err == nil && len(b) > 0 {
			if resp, err := http.Get(base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					token = strings.TrimSpace(string(b))
					break
				}
			}
		}
		if time.Now().After(deadline) {
			return res, errors.New("nimbus dev did not become ready within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}
	do := func(method, path string, body []byte) (int, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("main.py")
	io.WriteString(w, "def handler(event, context):\n    print('served', event.get('i'))\n    return {'i': event.get('i')}\n")
	zw.Close()
	deploy, _ := json.Marshal(map[string]any{"config": map[string]any{"name": "grow", "handler": "main.handler"}, "code_zip_base64": base64.StdEncoding.EncodeToString(zb.Bytes())})
	if status, b, err := do("PUT", "/v1/functions/grow", deploy); err != nil || status >= 300 {
		return res, fmt.Errorf("deploy: %d %s %v", status, b, err)
	}

	var done, failed atomic.Int64
	next := n / 10
	var mu sync.Mutex
	sample := func() {
		s := Sample{Invocations: done.Load()}
		s.RaftDBMB = mb(size(filepath.Join(data, "raft", "raft.db")))
		s.SnapshotsMB = mb(dirSize(filepath.Join(data, "raft", "snapshots")))
		s.DataDirMB = mb(dirSize(data))
		s.DiskMB = mb(diskUsage(data))
		s.RSSMB = mb(serverRSS(cmd.Process.Pid))
		mu.Lock()
		res.Samples = append(res.Samples, s)
		mu.Unlock()
	}
	start := time.Now()
	var wg sync.WaitGroup
	var issued atomic.Int64
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := issued.Add(1)
				if i > n {
					return
				}
				status, _, err := do("POST", "/v1/functions/grow/invoke", []byte(`{"i":`+strconv.FormatInt(i, 10)+`}`))
				if err != nil || status != 200 {
					failed.Add(1)
				}
				if d := done.Add(1); next > 0 && d%next == 0 {
					sample()
				}
			}
		}()
	}
	wg.Wait()
	res.Seconds = stats.Round(time.Since(start).Seconds())
	res.Invocations, res.Failed = done.Load(), failed.Load()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	// Let the last batches of records commit, then look at what is kept.
	time.Sleep(2 * time.Second)
	status, b, err := do("GET", "/v1/operator/snapshot", nil)
	if err != nil || status != 200 {
		return res, fmt.Errorf("backup: %d %v", status, err)
	}
	m, _, err := backup.Read(bytes.NewReader(b), nil)
	if err != nil {
		return res, err
	}
	res.RetainedRecs = m.Counts["records"]
	res.StateMB = mb(m.State.Size)
	sample()
	res.DataDirMB = res.Samples[len(res.Samples)-1].DataDirMB
	res.DataDirOverSt = stats.Ratio(res.DataDirMB, res.StateMB)
	res.DiskMB = res.Samples[len(res.Samples)-1].DiskMB
	res.DiskOverSt = stats.Ratio(res.DiskMB, res.StateMB)
	return res, nil
}

func table(w io.Writer, r Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INVOCATIONS\tRAFT.DB MB\tSNAPSHOTS MB\tDATA DIR MB\tON DISK MB\tRSS MB")
	for _, s := range r.Samples {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", s.Invocations, s.RaftDBMB, s.SnapshotsMB, s.DataDirMB, s.DiskMB, s.RSSMB)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d invocations (%d failed) in %.0f s; %d records retained, state %.1f MB, data dir %.1f MB (%.1f MB on disk): %.2f x the state (%.2f on disk; goal <= %.0f)\n",
		r.Invocations, r.Failed, r.Seconds, r.RetainedRecs, r.StateMB, r.DataDirMB, r.DiskMB, r.DataDirOverSt, r.DiskOverSt, r.GoalDataDirMax)
}

func mb(b int64) float64 { return stats.Round(float64(b) / (1 << 20)) }

func size(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func dirSize(root string) int64 {
	var total int64
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// diskUsage is what the files under root occupy on disk: their
// allocated blocks (st_blocks, in 512-byte units), holes not counted.
func diskUsage(root string) int64 {
	var total int64
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					total += st.Blocks * 512
				}
			}
		}
		return nil
	})
	return total
}

// serverRSS is the resident set of nimbus dev: the process started and
// the children running the same program (dev starts itself again as the
// worker's parent of sandboxes), sandboxes not counted.
func serverRSS(pid int) int64 {
	total := rss(pid)
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	// A child is listed under the thread that started it.
	var kids []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		kids = append(kids, strings.Fields(string(b))...)
	}
	for _, f := range kids {
		kid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", kid)); string(c) == string(comm) {
			total += rss(kid)
		}
	}
	return total
}

// rss is a process's resident set in bytes (0 if unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
