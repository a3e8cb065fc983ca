package model

import "testing"

func TestASourcesPasswordIsShownAsStarsAndDialledAsItIs(t *testing.T) {
	s := Source{URL: "amqp://guest@127.0.0.1:5672/vhost", Password: "p@ss:word"}
	if got, want := s.ShownURL(), "amqp://guest:****@127.0.0.1:5672/vhost"; got != want {
		t.Errorf("shown %q, want %q", got, want)
	}
	if got, want := s.DialURL(), "amqp://guest:p%40ss%3Aword@127.0.0.1:5672/vhost"; got != want {
		t.Errorf("dialled %q, want %q", got, want)
	}
	if got, want := MaskURL("nats://u:secret@h:4222"), "nats://u:****@h:4222"; got != want {
		t.Errorf("masked %q, want %q", got, want)
	}
	if got := (Source{URL: "kafka://h:9092"}).ShownURL(); got != "kafka://h:9092" {
		t.Errorf("a URL without a password shown as %q", got)
	}
}
