package delta

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// memCloner is a Patcher output in memory that clones from basis: it
// records what it cloned, and can refuse (or fail) its nth clone.
type memCloner struct {
	basis  []byte
	out    bytes.Buffer
	align  int64
	clones [][2]int64 // offset, length
	refuse int        // the clone number (from 1) to refuse; 0: none
	fail   error      // returned by the clone numbered refuse, if set
	calls  int
}

func (m *memCloner) Write(p []byte) (int, error) { return m.out.Write(p) }

func (m *memCloner) CloneAlign() int64 { return m.align }

func (m *memCloner) Clone(off, n int64) (bool, error) {
	m.calls++
	if off%m.align != 0 || n%m.align != 0 || n < CloneMin {
		return false, fmt.Errorf("clone [%d, +%d) breaks alignment %d or minimum %d", off, n, m.align, CloneMin)
	}
	if int64(m.out.Len()) != off {
		return false, fmt.Errorf("clone at %d, but the output ends at %d", off, m.out.Len())
	}
	if m.calls == m.refuse {
		if m.fail != nil {
			return false, m.fail
		}
		m.align = 0
		return false, nil
	}
	m.out.Write(m.basis[off : off+n])
	m.clones = append(m.clones, [2]int64{off, n})
	return true, nil
}

// TestPatcherClones checks that a Patcher whose output can clone has it
// clone exactly the aligned ranges that stay where they were in the basis,
// writes everything else itself, and that the result and the derived
// signature are those of a plain copy, also when the output refuses a
// clone halfway.
func TestPatcherClones(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	base := randBytes(r, 3_000_017) // block size 1792: blocks straddle 4 KiB pages
	mid := len(base) / 2
	changed := bytes.Clone(base)
	copy(changed[mid:], randBytes(r, 1000))
	tests := []struct {
		name   string
		new    []byte
		align  int64
		refuse int
		// minCloned and maxCloned bound the bytes cloned.
		minCloned, maxCloned int64
	}{
		{"1000 bytes changed in the middle", changed, 4096, 0, int64(len(base)) - 3*CloneMin, int64(len(base))},
		{"identical", base, 4096, 0, int64(len(base)) - 8192, int64(len(base))},
		{"odd alignment", changed, 1 << 16, 0, int64(len(base)) - 4*CloneMin, int64(len(base))},
		{"shifted by one", base[1:], 4096, 0, 0, 0},
		{"inserted in the middle", cat(base[:mid], []byte("xyz"), base[mid:]), 4096, 0, int64(mid) - 2*CloneMin, int64(mid)},
		{"truncated", base[:len(base)-5000], 4096, 0, int64(len(base)) - 5000 - 2*CloneMin, int64(len(base)) - 5000},
		{"cannot clone", changed, 0, 0, 0, 0},
		{"refuses the second clone", changed, 4096, 2, 1, int64(mid)},
	}
	for _, tt := range tests {
		for _, resign := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/resign=%v", tt.name, resign), func(t *testing.T) {
				sig, err := Signature(bytes.NewReader(base), int64(len(base)))
				if err != nil {
					t.Fatal(err)
				}
				var enc bytes.Buffer
				if err := WriteDelta(&enc, sig, bytes.NewReader(tt.new), ConfirmAll); err != nil {
					t.Fatal(err)
				}
				var rs *Resigner
				if resign {
					rs = NewResigner(sig, int64(len(tt.new)))
				}
				m := &memCloner{basis: base, align: tt.align, refuse: tt.refuse}
				if err := ApplyStreamResign(bytes.NewReader(base), &enc, m, rs); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(m.out.Bytes(), tt.new) {
					t.Fatal("rebuilt file differs")
				}
				var cloned int64
				for _, c := range m.clones {
					cloned += c[1]
					if !bytes.Equal(tt.new[c[0]:c[0]+c[1]], base[c[0]:c[0]+c[1]]) {
						t.Errorf("cloned [%d, +%d), which the new file does not hold there", c[0], c[1])
					}
				}
				if cloned < tt.minCloned || cloned > tt.maxCloned {
					t.Errorf("cloned %d bytes in %d ranges, want %d to %d", cloned, len(m.clones), tt.minCloned, tt.maxCloned)
				}
				if rs == nil {
					return
				}
				got, err := rs.Sig()
				if err != nil {
					if !rs.gaveUp { // a quarter of the file or more changed
						t.Fatal(err)
					}
					return
				}
				want, err := Signature(bytes.NewReader(tt.new), int64(len(tt.new)))
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Blocks) != len(want.Blocks) {
					t.Fatalf("derived signature has %d blocks, Signature %d", len(got.Blocks), len(want.Blocks))
				}
				for i := range want.Blocks {
					if got.Blocks[i] != want.Blocks[i] {
						t.Fatalf("block %d of %d of the derived signature differs", i, len(want.Blocks))
					}
				}
			})
		}
	}
}

// TestPatcherCloneFails checks that a clone's error ends the rebuild.
func TestPatcherCloneFails(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	base := randBytes(r, 1_000_000)
	sig, err := Signature(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	if err := WriteDelta(&enc, sig, bytes.NewReader(base), ConfirmAll); err != nil {
		t.Fatal(err)
	}
	full := errors.New("no space left on device")
	m := &memCloner{basis: base, align: 4096, refuse: 1, fail: full}
	if err := ApplyStreamResign(bytes.NewReader(base), &enc, m, nil); !errors.Is(err, full) {
		t.Fatalf("ApplyStream = %v, want the clone's error", err)
	}
}

// TestPatcherClonesNotPastResigner: with a Resigner, the bytes of the
// basis's short last block, which the Resigner hashes, are written rather
// than cloned, even where an aligned range of them could be cloned, so that
// the derived signature is still Signature's.
func TestPatcherClonesNotPastResigner(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	base := randBytes(r, 100*MinBlockSize+1500) // last block: 1,500 bytes, spanning 512-byte pages
	sig, err := Signature(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	if err := WriteDelta(&enc, sig, bytes.NewReader(base), ConfirmAll); err != nil {
		t.Fatal(err)
	}
	rs := NewResigner(sig, int64(len(base)))
	m := &memCloner{basis: base, align: 512}
	if err := ApplyStreamResign(bytes.NewReader(base), &enc, m, rs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.out.Bytes(), base) {
		t.Fatal("rebuilt file differs")
	}
	if len(m.clones) == 0 {
		t.Fatal("nothing was cloned")
	}
	got, err := rs.Sig()
	if err != nil {
		t.Fatalf("derived signature: %v", err)
	}
	for i := range sig.Blocks {
		if got.Blocks[i] != sig.Blocks[i] {
			t.Fatalf("block %d of %d of the derived signature differs", i, len(sig.Blocks))
		}
	}
}
