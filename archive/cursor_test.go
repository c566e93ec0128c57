package archive

import (
	"errors"
	"slices"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

// TestCursor checks a cursor over several records: names come in order
// across chunks, the zero cursor is empty, and records whose names do not
// follow on from the previous chunk's are refused as damaged.
func TestCursor(t *testing.T) {
	var zero Cursor
	if zero.Next() || zero.Err() != nil {
		t.Errorf("zero Cursor: Next true or Err %v", zero.Err())
	}
	chunk := func(names ...string) []byte {
		m := map[string]*state.Entry{}
		for i, n := range names {
			m[n] = &state.Entry{Kind: state.File, Mode: 0o644, Size: int64(i + 1), Hash: [32]byte{byte(i)}}
		}
		return packDir(m)
	}
	tests := []struct {
		name    string
		chunks  [][]byte
		want    []string
		damaged bool
	}{
		{"one chunk", [][]byte{chunk("b", "a", "c")}, []string{"a", "b", "c"}, false},
		{"three chunks", [][]byte{chunk("a", "b"), chunk("c"), chunk("d", "e")}, []string{"a", "b", "c", "d", "e"}, false},
		{"an empty chunk", [][]byte{chunk("a"), chunk(), chunk("b")}, []string{"a", "b"}, false},
		{"chunks out of order", [][]byte{chunk("c", "d"), chunk("a")}, []string{"c", "d"}, true},
		{"a name repeated across chunks", [][]byte{chunk("a", "b"), chunk("b")}, []string{"a", "b"}, true},
		{"a damaged chunk", [][]byte{chunk("a"), {0x05, 0xff}}, []string{"a"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Cursor{dir: "d", chunks: tt.chunks}
			var got []string
			for c.Next() {
				got = append(got, string(c.Name()))
				if c.Entry.Kind != state.File || c.Entry.Size == 0 {
					t.Errorf("%s: entry %+v", c.Name(), c.Entry)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("names %q, want %q", got, tt.want)
			}
			if damaged := errors.Is(c.Err(), errPacked); damaged != tt.damaged {
				t.Errorf("Err() = %v, want damaged %v", c.Err(), tt.damaged)
			}
			if c.Next() {
				t.Error("Next true after the end")
			}
		})
	}
	list := []Child{{Name: "z", Entry: state.Entry{Kind: state.Dir, Mode: 0o755}}, {Name: "m", Entry: state.Entry{Kind: state.Symlink, Target: "z"}}}
	c := CursorOf(list)
	got, err := c.list()
	if err != nil || len(got) != 2 || got[0].Name != "m" || got[0].Entry.Target != "z" || got[1].Name != "z" || got[1].Entry.Mode != 0o755 {
		t.Errorf("CursorOf listed %+v, %v", got, err)
	}
}
