package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/state"
)

// CreateKey makes a new API key with 48 bits of public ID and 256 bits of
// secret, commits its hash through Raft, and returns the key itself (the
// only time it exists in full).
func CreateKey(ctx context.Context, cp ControlPlane, role, note string) (string, error) {
	idb := make([]byte, 6)
	sec := make([]byte, 32)
	rand.Read(idb)
	rand.Read(sec)
	id, secret := hex.EncodeToString(idb), hex.EncodeToString(sec)
	sum := sha256.Sum256([]byte(secret))
	key := state.Key{ID: id, SecretHash: hex.EncodeToString(sum[:]), Role: role, CreatedAt: time.Now().UTC(), Note: note}
	if _, err := cp.Apply(ctx, fsm.PutKeyType, fsm.PutKey{Key: key}); err != nil {
		return "", err
	}
	return "nimbus_" + id + "_" + secret, nil
}
