package wire

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

// TestFrameLayout pins the layout docs/protocol.md gives a frame's
// payload: the CBOR array [type, id, body], then the data, raw.
func TestFrameLayout(t *testing.T) {
	enc, err := encodeFrame(&frame{Type: tData, ID: 5, Data: []byte("hello")}, false)
	if err != nil {
		t.Fatal(err)
	}
	// 0x83: array of 3; 0x18 0x21: type 33 (data); 0x05: id; 0xf6: null.
	want := append([]byte{0, 0, 0, 10, 0x83, 0x18, 0x21, 0x05, 0xf6}, "hello"...)
	if !bytes.Equal(enc, want) {
		t.Fatalf("encoded frame = % x, want % x", enc, want)
	}
}

// TestReadFrameBuffers checks how readFrame's pooled buffer is shared: a
// frame's body is always a copy, and its data stays intact while the pool
// is reused, until the frame is released.
func TestReadFrameBuffers(t *testing.T) {
	data := bytes.Repeat([]byte("contents of small files "), 2000)
	body := mustBody(&wPutBatch{Ops: []wOp{{Kind: 1, Path: "d/f", Inline: true}}})
	churn := func(n int) {
		// Reuse the pooled buffers the way other frames would.
		for range 8 {
			b := getBuf(n)
			b = b[:cap(b)]
			for i := range b {
				b[i] = 0xAA
			}
			putBuf(b)
		}
	}
	for _, tt := range []struct {
		name     string
		data     []byte
		compress bool
	}{
		{"data", data, false},
		{"data compressed", data, true},
		{"no data", nil, false},
		{"no data compressed", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := body
			if tt.data == nil {
				b = mustBody(&wPaths{Paths: []string{string(data)}}) // compressible
			}
			enc, err := encodeFrame(&frame{Type: tPutBatch, ID: 7, Body: b, Data: tt.data}, tt.compress)
			if err != nil {
				t.Fatal(err)
			}
			if tt.compress && enc[0]&0x80 == 0 {
				t.Fatal("the frame was not compressed; the test does not cover that case")
			}
			f, err := readFrame(bytes.NewReader(enc))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Data, tt.data) || !bytes.Equal(f.Body, b) {
				t.Fatal("the frame did not decode to what was encoded")
			}
			churn(len(enc))
			if !bytes.Equal(f.Data, tt.data) || !bytes.Equal(f.Body, b) {
				t.Fatal("the decoded frame changed when the pool was reused before its release")
			}
			f.release()
			if f.Data != nil || f.buf != nil {
				t.Fatal("a released frame still refers to its buffer")
			}
			churn(len(enc))
			if !bytes.Equal(f.Body, b) {
				t.Fatal("the frame's body changed when its buffer was reused: it must be a copy")
			}
		})
	}
}

// BenchmarkReadPutBatchFrame reads a put-batch frame of 64 small files, as
// the far side of a first sync does for every 64 files.
func BenchmarkReadPutBatchFrame(b *testing.B) {
	ops := make([]wOp, 64)
	for i := range ops {
		ops[i] = wOp{Kind: 1, Path: fmt.Sprintf("d%03d/s%04d/f%06d.dat", i, i, i), New: toWire(&state.Entry{Kind: state.File, Size: 3000, Mode: 0o644}), Inline: true}
	}
	enc, err := encodeFrame(&frame{Type: tPutBatch, ID: 7, Body: mustBody(&wPutBatch{Ops: ops}), Data: bytes.Repeat([]byte{1}, 64*3000)}, false)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	r := bytes.NewReader(enc)
	for b.Loop() {
		r.Reset(enc)
		f, err := readFrame(r)
		if err != nil {
			b.Fatal(err)
		}
		f.release()
	}
}
