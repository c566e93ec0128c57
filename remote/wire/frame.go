package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/zstd"
)

// Limits of the protocol.
const (
	// MaxFrame is the largest frame, compressed or not, either side
	// accepts. A longer one is refused from its length prefix, before any
	// memory is set aside for it.
	MaxFrame = 4 << 20
	// ChunkSize is the largest piece of a file or other byte stream one
	// data frame carries.
	ChunkSize = 256 << 10
	// window is how many stream frames (data or items) a sender may have
	// in flight on one stream before the receiver grants more credit.
	window = 4
	// maxBatchItems and maxBatchBytes bound the lists one frame carries.
	maxBatchItems = 4096
	maxBatchBytes = 1 << 20
	// compressedFlag marks a zstd-compressed frame in its length prefix.
	compressedFlag = 1 << 31
	// minCompress is the smallest payload worth compressing.
	minCompress = 256
)

// msgType says what a frame is.
type msgType uint8

// Requests, sent by the client under a new identifier.
const (
	tHello msgType = iota + 1
	tOpen
	tScan
	tArchiveList
	tStat
	tList
	tReadFile
	tApply
	tCommit
	tClose
	tSignature
	tReadDelta
	tPutBatch
)

// Stream and reply frames, under the identifier of a request.
const (
	tSetup    msgType = iota + 32 // client options, right after the magic
	tData                         // a chunk of a byte stream
	tEnd                          // the end of a byte stream (Body: error or nil)
	tItems                        // a batch of a listing
	tCredit                       // permission to send more stream frames (Body: count)
	tCancel                       // the client gives up on a request
	tProgress                     // scan progress (Body: counts)
	tReply                        // a request's successful result
	tError                        // a request's failure (Body: errBody)
)

func (t msgType) isRequest() bool { return t >= tHello && t <= tPutBatch }

// String names t for error messages.
func (t msgType) String() string {
	names := map[msgType]string{
		tHello: "hello", tOpen: "open", tScan: "scan", tArchiveList: "archive-list",
		tStat: "stat", tList: "list", tReadFile: "read-file", tApply: "apply",
		tCommit: "commit", tClose: "close", tSignature: "signature", tReadDelta: "read-delta",
		tPutBatch: "put-batch",
		tSetup:    "setup", tData: "data", tEnd: "end", tItems: "items", tCredit: "credit",
		tCancel: "cancel", tProgress: "progress", tReply: "reply", tError: "error",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// frame is one decoded frame. On the wire its payload is the CBOR array
// of a frameHead followed by the frame's data, raw, up to the end of the
// payload: the bytes of files travel and arrive without being encoded or
// copied by the CBOR codec.
type frame struct {
	Type msgType
	ID   uint64
	// Body is the CBOR of the message's own structure (nil: none).
	Body cbor.RawMessage
	// Data is a chunk of a byte stream (tData), a small file's whole
	// contents (tApply with wOp.Inline), or the contents of the files of a
	// tPutBatch, one after another. Read from the wire, it is a slice of
	// the buffer the frame was read into (see release).
	Data []byte

	// buf is the pooled buffer Data lies in, if any.
	buf []byte
}

// frameHead is the CBOR part of a frame's payload.
type frameHead struct {
	_    struct{} `cbor:",toarray"`
	Type msgType
	ID   uint64
	Body cbor.RawMessage
}

// release recycles the buffer the frame's data was read into. Its caller
// must be the frame's only user and done with Data: the buffer goes to the
// next frame read. A frame never released leaves its buffer to the
// collector.
func (f *frame) release() {
	if f.buf != nil {
		putBuf(f.buf)
	}
	f.buf, f.Data = nil, nil
}

// ErrProtocol marks a peer that broke the protocol: a malformed or
// oversized frame, an unexpected message, a window overrun. The connection
// is closed.
var ErrProtocol = errors.New("protocol violation")

// FrameTooLargeError reports a frame longer than MaxFrame.
type FrameTooLargeError struct {
	Size uint32
}

// Error says how large the refused frame claimed to be.
func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("%v: a frame of %d bytes announced, more than the %d allowed", ErrProtocol, e.Size, MaxFrame)
}

// Unwrap makes the error match ErrProtocol.
func (e *FrameTooLargeError) Unwrap() error { return ErrProtocol }

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
	// zdec decompresses frames; DecodeAll is safe for concurrent use and
	// refuses output longer than MaxFrame.
	zdec *zstd.Decoder
	zenc *zstd.Encoder
)

func init() {
	var err error
	if encMode, err = (cbor.EncOptions{}).EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		MaxNestedLevels:  8,
		MaxArrayElements: maxBatchItems + 16,
		MaxMapPairs:      64,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		// File names are bytes, not text: a name that is not valid UTF-8
		// travels as it is (the encoder writes Go strings unchanged).
		UTF8: cbor.UTF8DecodeInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxFrame), zstd.WithDecoderMaxWindow(MaxFrame))
	if err != nil {
		panic(err)
	}
	zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err)
	}
}

// marshalBody encodes a message body (nil stays nil).
func marshalBody(v any) (cbor.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return b, nil
}

// noBody reports whether f carries no body (absent or CBOR null).
func noBody(f *frame) bool {
	return len(f.Body) == 0 || (len(f.Body) == 1 && f.Body[0] == 0xf6)
}

// unmarshalBody decodes a message body into v.
func unmarshalBody(f *frame, v any) error {
	if noBody(f) {
		return fmt.Errorf("%w: %s message without a body", ErrProtocol, f.Type)
	}
	if err := decMode.Unmarshal(f.Body, v); err != nil {
		return fmt.Errorf("%w: bad %s message: %v", ErrProtocol, f.Type, err)
	}
	return nil
}

// encodeFrame returns f with its length prefix, compressed if compress is
// set and that makes it shorter.
func encodeFrame(f *frame, compress bool) ([]byte, error) {
	// The buffer comes from getBuf: the connection's writer recycles it
	// once written.
	buf := bytes.NewBuffer(getBuf(4 + len(f.Data) + len(f.Body) + 32))
	buf.Write([]byte{0, 0, 0, 0})
	if err := encMode.NewEncoder(buf).Encode(&frameHead{Type: f.Type, ID: f.ID, Body: f.Body}); err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.Type, err)
	}
	buf.Write(f.Data)
	out := buf.Bytes()
	payload := out[4:]
	if len(payload) > MaxFrame {
		return nil, fmt.Errorf("encode %s frame: %d bytes, more than the %d allowed", f.Type, len(payload), MaxFrame)
	}
	if compress && len(payload) >= minCompress {
		z := zenc.EncodeAll(payload, make([]byte, 4, 4+len(payload)))
		if len(z)-4 < len(payload) {
			binary.BigEndian.PutUint32(z, uint32(len(z)-4)|compressedFlag)
			return z, nil
		}
	}
	binary.BigEndian.PutUint32(out, uint32(len(payload)))
	return out, nil
}

// readFrame reads one frame from r. It returns io.EOF only when r ends
// exactly between two frames.
func readFrame(r io.Reader) (*frame, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	v := binary.BigEndian.Uint32(h[:])
	size := v &^ compressedFlag
	if size > MaxFrame {
		return nil, &FrameTooLargeError{Size: size}
	}
	// The payload goes into a pooled buffer. A frame without data holds
	// copies of what it needs (its body), so the buffer goes back to the
	// pool at once; one with data holds the buffer until released. A
	// first sync of 100,000 small files reads 400 MB of put-batch frames,
	// each freshly allocated and zeroed before.
	buf := getBuf(int(size))
	payload := buf[:size]
	if _, err := io.ReadFull(r, payload); err != nil {
		putBuf(buf)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	compressed := v&compressedFlag != 0
	f, err := decodeFrame(payload, compressed)
	if err != nil || len(f.Data) == 0 || compressed {
		// Compressed data lies in the decompressor's own buffer.
		putBuf(buf)
		return f, err
	}
	f.buf = buf
	return f, nil
}

// decodeFrame decodes a frame's payload.
func decodeFrame(payload []byte, compressed bool) (*frame, error) {
	if compressed {
		var err error
		payload, err = zdec.DecodeAll(payload, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: bad compressed frame: %v", ErrProtocol, err)
		}
		if len(payload) > MaxFrame {
			return nil, fmt.Errorf("%w: compressed frame expands to %d bytes, more than the %d allowed", ErrProtocol, len(payload), MaxFrame)
		}
	}
	var h frameHead
	data, err := decMode.UnmarshalFirst(payload, &h)
	if err != nil {
		return nil, fmt.Errorf("%w: bad frame: %v", ErrProtocol, err)
	}
	f := &frame{Type: h.Type, ID: h.ID, Body: h.Body}
	if len(data) > 0 {
		f.Data = data
	}
	if len(f.Data) > 0 && f.Type != tData && f.Type != tApply && f.Type != tPutBatch {
		return nil, fmt.Errorf("%w: %s frame carrying data", ErrProtocol, f.Type)
	}
	if len(f.Data) > ChunkSize {
		return nil, fmt.Errorf("%w: data frame of %d bytes, more than the %d allowed", ErrProtocol, len(f.Data), ChunkSize)
	}
	return f, nil
}
