package gateway

import (
	"errors"
	"net/http"

	"nimbus/internal/service"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// saveSnapshot answers with a backup of the cluster (internal/backup),
// streamed as it is made. An error after its first byte can only cut it
// short, which a reader's checks catch (the description ends it).
func (g *Gateway) saveSnapshot(w http.ResponseWriter, r *http.Request) {
	cw := &countingWriter{w: w}
	if _, err := g.svc.SaveBackup(r.Context(), cw, nil); err != nil {
		if cw.n == 0 {
			writeError(w, g.log, err)
			return
		}
		g.log.Error("a backup failed after it began: its reader sees it cut short", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// restoreSnapshot replaces the cluster's state with the backup in the
// body, on the leader; another server answers 409 NotLeader with the
// leader's API address in X-Nimbus-Leader, for the client to send it
// there.
func (g *Gateway) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	m, err := g.svc.RestoreBackup(r.Context(), r.Body)
	if err != nil {
		var nl *service.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != "" {
			if info, ok := g.cfg.Control.Store().ServerInfo(nl.Leader); ok && info.APIAddr != "" {
				w.Header().Set(client.HeaderLeader, info.APIAddr)
			}
		}
		writeError(w, g.log, clientClosed(r, err))
		return
	}
	writeJSON(w, http.StatusOK, wire.BackupMeta(m))
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 {
		c.w.Header().Set("Content-Type", "application/gzip")
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
