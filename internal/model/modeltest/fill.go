// Package modeltest fills model (and wire) values for tests.
package modeltest

import (
	"encoding/json"
	"hash/fnv"
	"reflect"
	"time"
)

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage(nil))
)

// Fill sets every field of *ptr to a non-zero value that depends only on
// the field's path (from name) and kind, so that two declarations of the
// same type (a model type and its wire type, or one before and after a
// change) get the same values.
func Fill(ptr any, name string) { fill(reflect.ValueOf(ptr).Elem(), name) }

func fill(v reflect.Value, path string) {
	h := fnv.New32a()
	h.Write([]byte(path))
	n := int64(h.Sum32()%1000) + 1
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC).Add(time.Duration(n) * time.Second)))
		return
	case v.Type() == rawType:
		v.SetBytes([]byte(`{"path":"` + path + `"}`))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path)
	case reflect.String:
		v.SetString(path)
	case reflect.Int, reflect.Int64:
		v.SetInt(n)
	case reflect.Uint64:
		v.SetUint(uint64(n))
	case reflect.Float64:
		v.SetFloat(float64(n) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), path+"[0]")
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, path+".key")
		fill(e, path+".value")
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		panic("fill: no value for " + v.Type().String() + " at " + path)
	}
}
