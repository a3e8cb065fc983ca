package state

import (
	"fmt"
	"testing"
)

func TestACowMapChangeLeavesThePublishedOneAsItWas(t *testing.T) {
	var m cowMap[int]
	if _, ok := m.get("a"); ok || m.len() != 0 {
		t.Fatal("the zero cowMap is not empty")
	}
	src := map[string]int{}
	for i := range 1000 {
		src[fmt.Sprint(i)] = i
	}
	a := newCowMap(src)
	b := a.with("new", -1).with("7", 70).without("8").without("absent")
	for k, want := range map[string]int{"7": 7, "8": 8, "999": 999} {
		if got, ok := a.get(k); !ok || got != want {
			t.Errorf("the published map changed: %s = %d (%v)", k, got, ok)
		}
	}
	if _, ok := a.get("new"); ok || a.len() != 1000 {
		t.Errorf("the published map gained a key (len %d)", a.len())
	}
	if v, _ := b.get("7"); v != 70 {
		t.Errorf("b's 7 = %d", v)
	}
	if _, ok := b.get("8"); ok {
		t.Error("b kept 8")
	}
	if v, ok := b.get("new"); !ok || v != -1 || b.len() != 1000 {
		t.Errorf("b's new = %d (%v), len %d", v, ok, b.len())
	}
}
