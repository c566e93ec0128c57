package delta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/fxamacker/cbor/v2"
)

// The encodings of this package are sequences of items, each a 4-byte
// big-endian length followed by that many bytes of CBOR. An item longer
// than maxItem is refused before anything is allocated for it.
const (
	maxItem = 128 << 10
	// sigBatch is how many blocks one signature item carries.
	sigBatch = 4096
	// packedBlock is the size of one block in a signature item: the weak
	// checksum (big-endian) then the strong hash.
	packedBlock = 4 + StrongSize

	instrMagic = "concord-delta"
	sigMagic   = "concord-sig"
	// encodingVersion is the version of both encodings.
	encodingVersion = 1

	kindEnd = 3 // the item closing an instruction stream
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = (cbor.EncOptions{}).EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// streamHeader opens an instruction stream or a signature.
type streamHeader struct {
	_         struct{} `cbor:",toarray"`
	Magic     string
	Version   uint
	BlockSize int
	Size      int64
}

// instrItem is one instruction: Copy (A = first block, B = count),
// Literal (Data) or the end (A = length of the rebuilt file).
type instrItem struct {
	_    struct{} `cbor:",toarray"`
	Kind uint8
	A, B int64
	Data []byte
}

// itemWriter writes length-prefixed CBOR items.
type itemWriter struct {
	w   io.Writer
	buf bytes.Buffer
	enc *cbor.Encoder
}

func newItemWriter(w io.Writer) *itemWriter {
	iw := &itemWriter{w: w}
	iw.enc = encMode.NewEncoder(&iw.buf)
	return iw
}

func (iw *itemWriter) write(v any) error {
	iw.buf.Reset()
	iw.buf.Write([]byte{0, 0, 0, 0})
	if err := iw.enc.Encode(v); err != nil {
		return err
	}
	b := iw.buf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := iw.w.Write(b)
	return err
}

// readItem reads one item into v, using buf as scratch space.
func readItem(r io.Reader, buf *[]byte, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxItem {
		return fmt.Errorf("%w: item of %d bytes (at most %d allowed)", ErrCorrupt, size, maxItem)
	}
	if cap(*buf) < int(size) {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// truncated turns an end of input in the middle of a stream into an error
// wrapping ErrCorrupt.
func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s is truncated", ErrCorrupt, what)
	}
	return fmt.Errorf("delta: read %s: %w", what, err)
}

// InstrWriter encodes an instruction stream.
type InstrWriter struct {
	iw     *itemWriter
	h      Header
	blocks int64
	size   int64
	closed bool
}

// EncodeInstrs writes the header of an instruction stream for a basis laid
// out as h to w, and returns the writer for its instructions. Its Write
// method has the signature Delta's emit function needs.
func EncodeInstrs(w io.Writer, h Header) (*InstrWriter, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	iw := newItemWriter(w)
	err := iw.write(streamHeader{Magic: instrMagic, Version: encodingVersion, BlockSize: h.BlockSize, Size: h.BasisSize})
	if err != nil {
		return nil, fmt.Errorf("delta: write header: %w", err)
	}
	return &InstrWriter{iw: iw, h: h, blocks: numBlocks(h.BasisSize, h.BlockSize)}, nil
}

// Write encodes one instruction, which must fit the basis.
func (w *InstrWriter) Write(in Instr) error {
	var it instrItem
	switch in.Kind {
	case Copy:
		if in.Block < 0 || in.Count <= 0 || in.Block >= w.blocks || in.Count > w.blocks-in.Block {
			return fmt.Errorf("delta: copy of blocks [%d, +%d) from a basis of %d blocks", in.Block, in.Count, w.blocks)
		}
		it = instrItem{Kind: uint8(Copy), A: in.Block, B: in.Count}
		bs := int64(w.h.BlockSize)
		w.size += min((in.Block+in.Count)*bs, w.h.BasisSize) - in.Block*bs
	case Literal:
		if len(in.Data) == 0 || len(in.Data) > MaxLiteral {
			return fmt.Errorf("delta: literal of %d bytes (allowed 1 to %d)", len(in.Data), MaxLiteral)
		}
		it = instrItem{Kind: uint8(Literal), Data: in.Data}
		w.size += int64(len(in.Data))
	default:
		return fmt.Errorf("delta: unknown instruction kind %d", in.Kind)
	}
	if err := w.iw.write(it); err != nil {
		return fmt.Errorf("delta: write instruction: %w", err)
	}
	return nil
}

// Close writes the end of the stream, which carries the length of the
// rebuilt file. It does not close the underlying writer.
func (w *InstrWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.iw.write(instrItem{Kind: kindEnd, A: w.size}); err != nil {
		return fmt.Errorf("delta: write end: %w", err)
	}
	return nil
}

// InstrReader decodes an instruction stream.
type InstrReader struct {
	r      io.Reader
	h      Header
	blocks int64
	size   int64
	buf    []byte
	done   bool
}

// DecodeInstrs reads the header of an instruction stream from r and
// returns a reader for its instructions.
func DecodeInstrs(r io.Reader) (*InstrReader, error) {
	d := &InstrReader{r: r}
	var sh streamHeader
	if err := readItem(r, &d.buf, &sh); err != nil {
		return nil, truncated("delta header", err)
	}
	if sh.Magic != instrMagic {
		return nil, fmt.Errorf("%w: not an instruction stream", ErrCorrupt)
	}
	if sh.Version != encodingVersion {
		return nil, fmt.Errorf("%w: instruction stream version %d (this program reads %d)", ErrCorrupt, sh.Version, encodingVersion)
	}
	d.h = Header{BlockSize: sh.BlockSize, BasisSize: sh.Size}
	if err := d.h.check(); err != nil {
		return nil, err
	}
	d.blocks = numBlocks(d.h.BasisSize, d.h.BlockSize)
	return d, nil
}

// Header returns the stream's basis layout.
func (d *InstrReader) Header() Header { return d.h }

// Size returns the length of the rebuilt file announced by the end of the
// stream; it is valid once Next has returned io.EOF.
func (d *InstrReader) Size() int64 { return d.size }

// Next returns the next instruction, or io.EOF after the end of the
// stream. An instruction that does not fit the basis, and a stream that
// stops before its end, are errors wrapping ErrCorrupt. The returned
// literal data stays valid until the next call.
func (d *InstrReader) Next() (Instr, error) {
	if d.done {
		return Instr{}, io.EOF
	}
	var it instrItem
	if err := readItem(d.r, &d.buf, &it); err != nil {
		return Instr{}, truncated("delta", err)
	}
	switch InstrKind(it.Kind) {
	case Copy:
		if it.A < 0 || it.B <= 0 || it.A >= d.blocks || it.B > d.blocks-it.A {
			return Instr{}, fmt.Errorf("%w: copy of blocks [%d, +%d) from a basis of %d blocks", ErrCorrupt, it.A, it.B, d.blocks)
		}
		return Instr{Kind: Copy, Block: it.A, Count: it.B}, nil
	case Literal:
		if len(it.Data) == 0 || len(it.Data) > MaxLiteral {
			return Instr{}, fmt.Errorf("%w: literal of %d bytes (allowed 1 to %d)", ErrCorrupt, len(it.Data), MaxLiteral)
		}
		return Instr{Kind: Literal, Data: it.Data}, nil
	case kindEnd:
		if it.A < 0 {
			return Instr{}, fmt.Errorf("%w: negative length %d", ErrCorrupt, it.A)
		}
		d.done = true
		d.size = it.A
		return Instr{}, io.EOF
	}
	return Instr{}, fmt.Errorf("%w: unknown instruction kind %d", ErrCorrupt, it.Kind)
}

// All returns an iterator over the remaining instructions, for Apply; it
// stops after the end of the stream or the first error.
func (d *InstrReader) All() iter.Seq2[Instr, error] {
	return func(yield func(Instr, error) bool) {
		for {
			in, err := d.Next()
			if err == io.EOF {
				return
			}
			if !yield(in, err) || err != nil {
				return
			}
		}
	}
}

// WriteDelta computes the delta of newFile against sig, confirming matches
// as c says, and writes it to w as an encoded instruction stream.
func WriteDelta(w io.Writer, sig *Sig, newFile io.Reader, c Confirm) error {
	if err := sig.check(); err != nil {
		return err
	}
	iw, err := EncodeInstrs(w, sig.Header())
	if err != nil {
		return err
	}
	// A writer that buffers (the wire's data stream, NewReader's) is
	// flushed whenever the instructions written since the last flush stand
	// for flushEvery bytes of the result: the receiver then rebuilds while
	// this side is still reading, instead of waiting for a buffer that a
	// few Copy instructions would take a whole file to fill.
	f, _ := w.(flusher)
	var since int64
	emit := func(in Instr) error {
		before := iw.size
		if err := iw.Write(in); err != nil {
			return err
		}
		if since += iw.size - before; f != nil && since >= flushEvery {
			since = 0
			if err := f.Flush(); err != nil {
				return fmt.Errorf("delta: write instruction: %w", err)
			}
		}
		return nil
	}
	if err := Delta(sig, newFile, c, emit); err != nil {
		return err
	}
	if err := iw.Close(); err != nil {
		return err
	}
	if f != nil {
		return f.Flush()
	}
	return nil
}

// flusher is a buffering writer WriteDelta flushes now and then.
type flusher interface{ Flush() error }

// flushEvery is how much of the rebuilt file the instructions between two
// flushes stand for.
const flushEvery = 4 << 20

// NewReader returns a reader of the encoded delta of newFile against sig,
// computed as it is read (in a goroutine that ends when the delta is done
// or the reader is closed). It is what an OpPut with Delta set takes as
// content. Each Read returns what one flush of WriteDelta produced (at most
// readerBuffer bytes), so a caller that sends what each Read returns keeps
// the receiver busy. Close returns once the goroutine has stopped reading
// newFile, so that the caller may close newFile then.
func NewReader(sig *Sig, newFile io.Reader, c Confirm) io.ReadCloser {
	pr, pw := io.Pipe()
	r := &deltaReader{PipeReader: pr, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		bw := bufio.NewWriterSize(pw, readerBuffer)
		pw.CloseWithError(WriteDelta(bw, sig, newFile, c))
	}()
	return r
}

// deltaReader is NewReader's reader.
type deltaReader struct {
	*io.PipeReader
	done chan struct{}
}

// Close stops the encoder (its next write fails) and waits for it.
func (r *deltaReader) Close() error {
	err := r.PipeReader.Close()
	<-r.done
	return err
}

// readerBuffer is the buffer of NewReader.
const readerBuffer = 128 << 10

// Encode writes s to w.
func (s *Sig) Encode(w io.Writer) error {
	if err := s.check(); err != nil {
		return err
	}
	iw := newItemWriter(w)
	if err := iw.write(streamHeader{Magic: sigMagic, Version: encodingVersion, BlockSize: s.BlockSize, Size: s.Size}); err != nil {
		return fmt.Errorf("delta: write signature: %w", err)
	}
	packed := make([]byte, 0, sigBatch*packedBlock)
	for blocks := s.Blocks; len(blocks) > 0; {
		n := min(len(blocks), sigBatch)
		packed = packed[:0]
		for _, b := range blocks[:n] {
			packed = binary.BigEndian.AppendUint32(packed, b.Weak)
			packed = append(packed, b.Strong[:]...)
		}
		if err := iw.write(packed); err != nil {
			return fmt.Errorf("delta: write signature: %w", err)
		}
		blocks = blocks[n:]
	}
	return nil
}

// DecodeSig reads a signature written by Sig.Encode from r. The signature
// must describe a file of exactly size bytes (what the scan saw), so that a
// peer cannot make the reader hold more than the file's signature.
func DecodeSig(r io.Reader, size int64) (*Sig, error) {
	var buf []byte
	var sh streamHeader
	if err := readItem(r, &buf, &sh); err != nil {
		return nil, truncated("signature", err)
	}
	if sh.Magic != sigMagic {
		return nil, fmt.Errorf("%w: not a signature", ErrCorrupt)
	}
	if sh.Version != encodingVersion {
		return nil, fmt.Errorf("%w: signature version %d (this program reads %d)", ErrCorrupt, sh.Version, encodingVersion)
	}
	h := Header{BlockSize: sh.BlockSize, BasisSize: sh.Size}
	if err := h.check(); err != nil {
		return nil, err
	}
	if sh.Size != size {
		return nil, fmt.Errorf("%w: signature of %d bytes for a file of %d bytes", ErrCorrupt, sh.Size, size)
	}
	n := numBlocks(sh.Size, sh.BlockSize)
	s := &Sig{BlockSize: sh.BlockSize, Size: sh.Size, Blocks: make([]Block, 0, min(n, sigBatch))}
	for int64(len(s.Blocks)) < n {
		var packed []byte
		if err := readItem(r, &buf, &packed); err != nil {
			return nil, truncated("signature", err)
		}
		if len(packed) == 0 || len(packed)%packedBlock != 0 || int64(len(packed)/packedBlock) > n-int64(len(s.Blocks)) {
			return nil, fmt.Errorf("%w: signature item of %d bytes", ErrCorrupt, len(packed))
		}
		for ; len(packed) > 0; packed = packed[packedBlock:] {
			var b Block
			b.Weak = binary.BigEndian.Uint32(packed)
			copy(b.Strong[:], packed[4:packedBlock])
			s.Blocks = append(s.Blocks, b)
		}
	}
	return s, nil
}
