package state

import (
	"bufio"
	"encoding/json"
	"io"
	"reflect"
	"strings"

	"nimbus/internal/model"
)

// encodeStreamed writes the JSON of snap to w as encoding/json's Encoder
// would (the same bytes, a newline after), but a field at a time and a
// slice's elements one at a time, so that it never holds more than an
// element's JSON: an Encoder builds the whole document in memory first,
// 128 MB of buffer for a 108 MB snapshot, on top of the state it copies.
//
// Each field is encoded as the only field of a one-field struct with its
// own tag (reflect.StructOf), so its name and the omitempty and
// omitzero rules are encoding/json's own; a non-empty slice is then
// written element by element, which encoding/json writes as
// '[' elements joined by ',' ']'.
func encodeStreamed(w io.Writer, snap *Snapshot) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var records recordEncoder
	v := reflect.ValueOf(snap).Elem()
	t := v.Type()
	bw.WriteByte('{')
	first := true
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || f.Anonymous || name == "-" {
			continue // none in Snapshot; encoding/json's rules for them are not repeated here
		}
		if name == "" {
			name = f.Name
		}
		if f.Name == "Records" && len(snap.storedRecords) > 0 {
			// A capture's records, written from the store's compact form
			// as the slice of their records would be.
			fv = reflect.ValueOf(snap.storedRecords)
		}
		if fv.Kind() == reflect.Slice && fv.Len() > 0 && fv.Type().Elem().Kind() != reflect.Uint8 {
			key, err := json.Marshal(name)
			if err != nil {
				return err
			}
			if !first {
				bw.WriteByte(',')
			}
			first = false
			bw.Write(key)
			bw.WriteString(":[")
			for j := range fv.Len() {
				if j > 0 {
					bw.WriteByte(',')
				}
				// The element's address, so that a method on the pointer
				// applies as it does to a slice's (addressable) element.
				elem := fv.Index(j).Addr().Interface()
				var eb []byte
				var err error
				switch r := elem.(type) {
				case **storedRecord:
					rec := (*r).record()
					eb, err = records.encode(&rec)
				case *model.Invocation:
					eb, err = records.encode(r)
				case *model.MetricHistory:
					eb, err = records.encodeHistory(r)
				default:
					eb, err = json.Marshal(elem)
				}
				if err != nil {
					return err
				}
				bw.Write(eb)
			}
			bw.WriteByte(']')
			continue
		}
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}})).Elem()
		one.Field(0).Set(fv)
		b, err := json.Marshal(one.Interface())
		if err != nil {
			return err
		}
		if len(b) == 2 {
			continue // {}: omitted
		}
		if !first {
			bw.WriteByte(',')
		}
		first = false
		bw.Write(b[1 : len(b)-1])
	}
	bw.WriteString("}\n")
	return bw.Flush()
}
