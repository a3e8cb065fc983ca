package cli

import "testing"

func TestSizesReadAsBinaryUnitsOrPlainMB(t *testing.T) {
	cases := []struct {
		in   string
		want int64 // -1: an error
	}{
		{"2GiB", 2 << 30},
		{"512MiB", 512 << 20},
		{"512", 512 << 20},
		{"1.5G", 3 << 29},
		{"256mb", 256 << 20},
		{"64 KiB", 64 << 10},
		{"4096B", 4096},
		{"0", 0},
		{"", -1},
		{"lots", -1},
		{"2GiBs", -1},
		{"2XB", -1},
		{"-1GiB", -1},
		{"NaN", -1},
		{"1e308", -1},
		{"2BB", -1},
	}
	for _, c := range cases {
		got, err := parseSize(c.in)
		if c.want < 0 {
			if err == nil {
				t.Errorf("%q read as %d; want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q read as %d (%v); want %d", c.in, got, err, c.want)
		}
	}
}
