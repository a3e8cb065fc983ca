package placement

import (
	"log/slog"
	"testing"
	"time"

	"nimbus/internal/rpc/rpcpb"
)

func TestThePlacerReportsThePressureOfReadyRemoteWorkersOnly(t *testing.T) {
	reg := NewRegistry(nil, time.Minute, 0, slog.New(slog.DiscardHandler))
	reg.Heartbeat(&rpcpb.WorkerHeartbeat{WorkerId: "w1", Address: "a:1", Slots: 4, CpuPressure: 12.5, MemoryPressure: 3})
	reg.Heartbeat(&rpcpb.WorkerHeartbeat{WorkerId: "w2", Address: "a:2", Slots: 4, CpuPressure: 80, Draining: true})
	got := New(reg).Pressure()
	if len(got) != 1 || got["w1"] != (Pressure{CPU: 12.5, Memory: 3}) {
		t.Fatalf("pressure = %+v, want w1's alone (w2 is draining)", got)
	}
}
