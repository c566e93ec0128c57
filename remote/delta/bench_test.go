package delta

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// benchFiles returns a 64 MiB file and a copy with 1,000 bytes changed in
// the middle.
func benchFiles() (old, nw []byte) {
	r := rand.New(rand.NewPCG(9, 10))
	old = make([]byte, 64<<20)
	for i := 0; i+8 <= len(old); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			old[i+j] = byte(v >> (8 * j))
		}
	}
	nw = bytes.Clone(old)
	mid := len(nw) / 2
	for i := range 1000 {
		nw[mid+i] ^= 0x5a
	}
	return old, nw
}

func BenchmarkSignature(b *testing.B) {
	old, _ := benchFiles()
	b.SetBytes(int64(len(old)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Signature(bytes.NewReader(old), int64(len(old))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDelta measures the source side on a 64 MiB file with 1,000
// bytes changed in the middle, in both confirm modes, and reports the
// literal bytes it sends.
func BenchmarkDelta(b *testing.B) {
	old, nw := benchFiles()
	sig, err := Signature(bytes.NewReader(old), int64(len(old)))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []Confirm{ConfirmAll, ConfirmResync} {
		b.Run(fmt.Sprintf("confirm=%d", c), func(b *testing.B) {
			b.SetBytes(int64(len(nw)))
			var literal, encoded int64
			for b.Loop() {
				literal = 0
				cw := &countWriter{}
				iw, _ := EncodeInstrs(cw, sig.Header())
				err := Delta(sig, bytes.NewReader(nw), c, func(in Instr) error {
					literal += int64(len(in.Data))
					return iw.Write(in)
				})
				if err != nil {
					b.Fatal(err)
				}
				iw.Close()
				encoded = cw.n
			}
			b.ReportMetric(float64(literal), "literal-bytes")
			b.ReportMetric(float64(encoded), "encoded-bytes")
		})
	}
}

// BenchmarkRoundTrip measures signature, delta and apply together, as one
// delta transfer of the 64 MiB file costs.
func BenchmarkRoundTrip(b *testing.B) {
	old, nw := benchFiles()
	b.SetBytes(int64(len(nw)))
	b.ResetTimer()
	for b.Loop() {
		sig, err := Signature(bytes.NewReader(old), int64(len(old)))
		if err != nil {
			b.Fatal(err)
		}
		var enc bytes.Buffer
		if err := WriteDelta(&enc, sig, bytes.NewReader(nw), ConfirmAll); err != nil {
			b.Fatal(err)
		}
		if err := ApplyStream(bytes.NewReader(old), &enc, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
