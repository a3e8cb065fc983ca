package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HeaderLeader names, in a 409 NotLeader answer, the API address of the
// server that leads: where a restore is to be sent.
const HeaderLeader = "X-Nimbus-Leader"

// BackupMeta describes a backup (nimbus operator snapshot).
type BackupMeta struct {
	Format    int            `json:"format"`
	CreatedAt time.Time      `json:"created_at"`
	Server    string         `json:"server,omitempty"`
	Index     uint64         `json:"index"`
	Term      uint64         `json:"term"`
	Counts    map[string]int `json:"counts,omitempty"`
	State     BackupEntry    `json:"state"`
	Blobs     []BackupEntry  `json:"blobs,omitempty"`
}

// BackupEntry is one checksummed entry of a backup.
type BackupEntry struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

const snapshotPath = "/v1/operator/snapshot"

// notLeaderAttempts bounds how often a restore is sent again after a
// server answered that it is not the leader.
const notLeaderAttempts = 10

// SaveSnapshot streams a backup of the cluster into w (admin). The
// bytes are the backup as the server made it: check them (internal
// backup.Read, nimbus operator snapshot inspect) before trusting them,
// since a server that failed midway can only cut the stream short.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, snapshotPath, nil, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// RestoreSnapshot sends a backup (body, to be read once per attempt)
// for the cluster to restore (admin). A server that is not the leader
// names the one that is, and the backup is sent there; one that cannot
// name it yet (a cluster just formed) is asked again a second later, up
// to ten times.
func (c *Client) RestoreSnapshot(ctx context.Context, body func() (io.Reader, error)) (BackupMeta, error) {
	target := c
	for attempt := 0; ; attempt++ {
		r, err := body()
		if err != nil {
			return BackupMeta{}, err
		}
		req, err := target.newRequest(ctx, http.MethodPost, snapshotPath, nil, r)
		if err != nil {
			return BackupMeta{}, err
		}
		req.Header.Set("Content-Type", "application/gzip")
		resp, err := target.send(req)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != "NotLeader" || attempt >= notLeaderAttempts {
				return BackupMeta{}, err
			}
			if leader := c.leaderOf(err); leader != "" {
				target = c.at(leader)
				continue
			}
			// A cluster just formed may not know its leader's address
			// yet: ask again shortly.
			select {
			case <-ctx.Done():
				return BackupMeta{}, err
			case <-time.After(time.Second):
			}
			continue
		}
		defer resp.Body.Close()
		var m BackupMeta
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			return BackupMeta{}, decodeErr(http.MethodPost, snapshotPath, err)
		}
		return m, nil
	}
}

// leaderOf is the leader an APIError's answer named, as a URL with this
// client's scheme.
func (c *Client) leaderOf(err error) string {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Leader == "" {
		return ""
	}
	if strings.Contains(ae.Leader, "://") {
		return ae.Leader
	}
	return c.base.Scheme + "://" + ae.Leader
}

// at is a copy of c that talks to base instead.
func (c *Client) at(base string) *Client {
	cp := *c
	if u, err := url.Parse(base); err == nil {
		cp.base = u
	}
	return &cp
}
