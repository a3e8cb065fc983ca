package cli

import "strconv"

// mbPerVCPU is the memory size that buys a full CPU, as on Lambda; the
// sandbox caps an instance's CPU time in proportion (internal/sandbox).
const mbPerVCPU = 1769

// cpuCap states the CPU an instance of a memory size may use, "" for an
// unset size.
func cpuCap(memoryMB int) string {
	if memoryMB <= 0 {
		return ""
	}
	return strconv.FormatFloat(float64(memoryMB)/mbPerVCPU, 'f', 2, 64) + " vCPU (a full CPU at 1,769 MB of memory)"
}
