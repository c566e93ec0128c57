package wire

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

// TestDecodeFrameCopies checks what readFrame relies on to recycle the
// buffer it read a frame into: the decoded frame's body and data are
// copies, not slices of that buffer, plain or compressed.
func TestDecodeFrameCopies(t *testing.T) {
	data := bytes.Repeat([]byte("contents of small files "), 2000)
	body := mustBody(&wPutBatch{Ops: []wOp{{Kind: 1, Path: "d/f", Inline: true}}})
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			enc, err := encodeFrame(&frame{Type: tPutBatch, ID: 7, Body: body, Data: data}, compress)
			if err != nil {
				t.Fatal(err)
			}
			if compress && enc[0]&0x80 == 0 {
				t.Fatal("the frame was not compressed; the test does not cover that case")
			}
			f, err := readFrame(bytes.NewReader(enc))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Data, data) || !bytes.Equal(f.Body, body) {
				t.Fatal("the frame did not decode to what was encoded")
			}
			// Reuse the pooled buffers the way other frames would.
			for range 8 {
				b := getBuf(len(enc))
				b = b[:cap(b)]
				for i := range b {
					b[i] = 0xAA
				}
				putBuf(b)
			}
			if !bytes.Equal(f.Data, data) || !bytes.Equal(f.Body, body) {
				t.Fatal("the decoded frame changed when the buffer it was read into was reused: it must hold copies")
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
		if _, err := readFrame(r); err != nil {
			b.Fatal(err)
		}
	}
}
