package browsertest

import (
	"image"
	"image/color"
	"image/draw"
	"testing"
)

func TestBlank(t *testing.T) {
	white := func() *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, 200, 100))
		draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
		return img
	}
	ink := func(img *image.RGBA, r image.Rectangle) *image.RGBA {
		draw.Draw(img, r, image.NewUniform(color.Black), image.Point{}, draw.Src)
		return img
	}
	cases := []struct {
		name string
		img  image.Image
		want bool
	}{
		{"a page of one colour is blank", white(), true},
		{"a few stray pixels leave it blank", ink(white(), image.Rect(0, 0, 2, 2)), true},
		{"a line of text is not blank", ink(white(), image.Rect(10, 10, 190, 14)), false},
		{"half dark, half light is not blank", ink(white(), image.Rect(0, 0, 100, 100)), false},
		{"an empty image is blank", image.NewRGBA(image.Rect(0, 0, 0, 0)), true},
	}
	for _, c := range cases {
		if got := blank(c.img); got != c.want {
			t.Errorf("%s: blank = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSerious(t *testing.T) {
	vs := []Violation{{ID: "a", Impact: "minor"}, {ID: "b", Impact: "serious"}, {ID: "c", Impact: "critical"}, {ID: "d", Impact: "moderate"}}
	got := Serious(vs)
	if len(got) != 2 || got[0].ID != "b" || got[1].ID != "c" {
		t.Errorf("Serious = %v, want b and c", got)
	}
}
