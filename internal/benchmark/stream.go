package benchmark

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"nimbus/pkg/client"
)

// StreamResult is issue 20's response-streaming keys: a warm function
// that yields a first chunk at once, then works streamWork before the
// rest, invoked streamed (time to its first byte) and not streamed (time
// to its whole answer, what a caller waits without streaming), in turns.
type StreamResult struct {
	StreamTTFBP50MS  float64 `json:"stream_ttfb_p50_ms"`
	StreamWholeP50MS float64 `json:"stream_whole_p50_ms"`
	StreamTTFBRatio  float64 `json:"stream_ttfb_ratio"`
}

// streamWork is the streaming function's work between its first chunk
// and the rest.
const streamWork = 50 * time.Millisecond

// streamSrc is the streaming function.
var streamSrc = fmt.Sprintf(`import time
def handler(event, context):
    def gen():
        yield "first chunk\n"
        time.sleep(%g)
        for i in range(10):
            yield "chunk %%d\n" %% i
    return gen()
`, streamWork.Seconds())

// runStream deploys the streaming function and measures it.
func runStream(ctx context.Context, a *api, rep *Report, sz sizes, prefix string, deployed *[]string) error {
	name := prefix + "-stream"
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("main.py")
	if err == nil {
		_, err = io.WriteString(w, streamSrc)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return err
	}
	if _, err := a.deployZip(ctx, name, buf.Bytes()); err != nil {
		return err
	}
	*deployed = append(*deployed, name)
	if _, err := a.firstByte(ctx, name); err != nil { // the cold start, unmeasured
		return err
	}
	n := max(sz.warm/10, 20)
	var ttfb, whole []time.Duration
	for range n {
		d, err := a.firstByte(ctx, name)
		if err != nil {
			return err
		}
		ttfb = append(ttfb, d)
		d, _, err = a.invoke(ctx, name)
		if err != nil {
			return err
		}
		whole = append(whole, d)
	}
	rep.StreamResult = &StreamResult{StreamTTFBP50MS: percentileMS(ttfb, 50), StreamWholeP50MS: percentileMS(whole, 50)}
	return nil
}

// firstByte invokes name streamed and returns the time from sending the
// request to its first byte of result; it reads the rest before it
// returns.
func (a *api) firstByte(ctx context.Context, name string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/v1/functions/"+url.PathEscape(name)+"/invoke?stream=true", bytes.NewReader([]byte("{}")))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var one [1]byte
	if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
		return 0, fmt.Errorf("benchmark: streamed invoke of %s: %d: %w", name, resp.StatusCode, err)
	}
	d := time.Since(t0)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || resp.Trailer.Get(client.HeaderFunctionError) != "" || resp.Header.Get(client.HeaderFunctionError) != "" {
		return 0, fmt.Errorf("benchmark: streamed invoke of %s failed: %d", name, resp.StatusCode)
	}
	return d, nil
}
