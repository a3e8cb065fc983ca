package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"

	"github.com/chromedp/chromedp"
)

// minInk is the share of a screenshot's pixels, in parts per ten
// thousand, that must differ from its most common colour: 0.2 %, about
// two lines of text on a 1280x900 page.
const minInk = 20

// Screenshot writes a PNG of the whole page of ctx (not only the viewport)
// to path, making its directory, and returns an error when the picture is
// blank: when fewer than 0.2 % of its pixels differ from its most common
// colour.
func Screenshot(ctx context.Context, path string) error {
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("browsertest: screenshot: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		return err
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		return fmt.Errorf("browsertest: screenshot %s: %w", path, err)
	}
	if blank(img) {
		return fmt.Errorf("screenshot %s is blank", path)
	}
	return nil
}

// blank reports whether fewer than minInk in 10,000 pixels of img differ
// from its most common colour.
func blank(img image.Image) bool {
	b := img.Bounds()
	counts := make(map[uint64]int)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			counts[uint64(r)<<48|uint64(g)<<32|uint64(bl)<<16|uint64(a)]++
		}
	}
	total, most := 0, 0
	for _, n := range counts {
		total += n
		most = max(most, n)
	}
	return total == 0 || (total-most)*10000 < total*minInk
}
