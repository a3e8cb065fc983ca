package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxSSELine bounds one line of a server-sent event stream; a log entry
// travels as one data line.
const maxSSELine = 16 << 20

// LogQuery filters Logs and FollowLogs; zero fields do not filter.
type LogQuery struct {
	RequestID string
	Since     time.Duration // only logs newer than now - Since
}

func (q LogQuery) values() url.Values {
	v := url.Values{}
	if q.RequestID != "" {
		v.Set("request_id", q.RequestID)
	}
	if q.Since > 0 {
		v.Set("since", q.Since.String())
	}
	return v
}

// Logs returns the logs of function name, as the server orders them.
func (c *Client) Logs(ctx context.Context, name string, q LogQuery) ([]LogEntry, error) {
	var out struct {
		Logs []LogEntry `json:"logs"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, functionPath(name)+"/logs", q.values(), nil, &out)
	if out.Logs == nil && err == nil {
		out.Logs = []LogEntry{}
	}
	return out.Logs, err
}

// FollowLogs streams the logs of function name (server-sent events, each
// `event: log` with a LogEntry as data) and calls fn for each entry, from
// the calling goroutine, until ctx ends or the server closes the stream.
// It returns nil when the server ends the stream and ctx.Err() when ctx
// ended it. Comment lines (keepalives) and other event types are ignored.
func (c *Client) FollowLogs(ctx context.Context, name string, q LogQuery, fn func(LogEntry)) error {
	v := q.values()
	v.Set("follow", "1")
	path := functionPath(name) + "/logs"
	req, err := c.newRequest(ctx, http.MethodGet, path, v, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = readSSE(resp.Body, func(event, data string) error {
		if event != "log" && event != "" {
			return nil
		}
		var e LogEntry
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return decodeErr(http.MethodGet, path, err)
		}
		fn(e)
		return nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readSSE parses a text/event-stream and calls fn once per dispatched
// event with its type ("" when none was given) and its data lines joined
// by "\n". It stops at the first error of fn or of the reader.
func readSSE(r io.Reader, fn func(event, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var event string
	var data []string
	hasData := false
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if hasData {
				if err := fn(event, strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			event, data, hasData = "", data[:0], false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			data = append(data, value)
			hasData = true
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("client: event stream line longer than %d bytes", maxSSELine)
		}
		return err
	}
	return nil
}
