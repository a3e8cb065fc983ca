package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag's size in bytes, written as a number with a unit
// (2GiB, 512MiB, 1.5G) or a plain number of MB. Units are binary
// whether or not they say "i" (MB is MiB, as in a function's memory
// size); B, K, M, G and T, with or without a trailing B.
type byteSize int64

func (s *byteSize) String() string {
	if *s == 0 {
		return "0"
	}
	return humanBytes(int64(*s))
}

func (s *byteSize) Type() string { return "size" }

func (s *byteSize) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = byteSize(n)
	return nil
}

// sizeUnits are the units parseSize reads, by their first letter.
var sizeUnits = map[byte]float64{'B': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}

// parseSize reads a byteSize.
func parseSize(v string) (int64, error) {
	t := strings.TrimSpace(v)
	num := strings.TrimRight(t, "BKMGTIbkmgti ")
	unit := strings.ToUpper(strings.TrimSpace(t[len(num):]))
	mult := float64(1 << 20) // a plain number is MB
	if unit != "" {
		m, ok := sizeUnits[unit[0]]
		rest := unit[1:]
		if !ok || (unit[0] != 'B' && rest != "" && rest != "B" && rest != "IB") || (unit[0] == 'B' && rest != "") {
			return 0, fmt.Errorf("%q: the unit is not one of B, KiB, MiB, GiB, TiB (or K, M, G, T, KB, MB, GB, TB)", v)
		}
		mult = m
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || !(f >= 0 && f*mult < 1<<62) { // NaN and Inf too

		return 0, fmt.Errorf("%q is not a size such as 2GiB, 512MiB or 512 (MB)", v)
	}
	return int64(f * mult), nil
}
