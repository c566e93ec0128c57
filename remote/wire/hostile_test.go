package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// rawPeer is a hostile server: it does the handshake, then answers
// requests with whatever frames a test scripts.
type rawPeer struct {
	conn net.Conn
	br   *bufio.Reader
}

func (p *rawPeer) handshake() error {
	if _, err := p.conn.Write(hello()); err != nil {
		return err
	}
	if err := readClientHello(p.br); err != nil {
		return err
	}
	_, err := readFrame(p.br) // setup
	return err
}

// request returns the next request, skipping flow-control frames.
func (p *rawPeer) request() (*frame, error) {
	for {
		f, err := readFrame(p.br)
		if err != nil {
			return nil, err
		}
		if f.Type.isRequest() {
			return f, nil
		}
	}
}

func (p *rawPeer) send(t msgType, id uint64, body any, data []byte) error {
	raw, err := marshalBody(body)
	if err != nil {
		return err
	}
	b, err := encodeFrame(&frame{Type: t, ID: id, Body: raw, Data: data}, false)
	if err != nil {
		return err
	}
	_, err = p.conn.Write(b)
	return err
}

// hostileClient connects a client to a rawPeer running script for each
// request until the connection ends.
func hostileClient(t *testing.T, script func(p *rawPeer, req *frame) error, opts ...Option) *Client {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer b.Close()
		p := &rawPeer{conn: b, br: bufio.NewReader(b)}
		if err := p.handshake(); err != nil {
			return
		}
		for {
			f, err := p.request()
			if err != nil {
				return
			}
			if f.Type == tClose {
				p.send(tReply, f.ID, wEmpty{}, nil)
				continue
			}
			if err := script(p, f); err != nil {
				return
			}
		}
	}()
	cl := NewClient(a, opts...).(*Client)
	t.Cleanup(func() {
		cl.Close()
		<-done
	})
	return cl
}

var dirEntry = &wEntry{Kind: uint8(state.Dir), Mode: 0o755, Hash: make([]byte, 32)}

// bomb is a compressed frame of a few kilobytes that expands to twice
// MaxFrame (built ahead, so that the allocation checks count only the
// client's work).
func makeBomb() []byte {
	head, _ := encMode.Marshal(&frameHead{Type: tData, ID: 1})
	payload := append(head, make([]byte, 2*MaxFrame)...)
	z := zenc.EncodeAll(payload, nil)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(z))|compressedFlag), z...)
}

func TestHostileServer(t *testing.T) {
	ctx := context.Background()
	bomb := makeBomb()
	tenBytes := &state.Entry{Kind: state.File, Size: 10}
	readAll := func(cl *Client) error {
		rc, err := cl.ReadFile(ctx, "f", tenBytes)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	}
	tests := []struct {
		name   string
		script func(p *rawPeer, req *frame) error
		call   func(cl *Client) error
		want   []error // the error must match all of these
		// fatal: the connection is broken afterwards.
		fatal bool
	}{
		{
			name: "scan sends ../x",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wScanItems{Changes: []wChange{{Path: "../x", New: dirEntry}}}, nil)
				return p.send(tReply, req.ID, &wScanReply{}, nil)
			},
			call: func(cl *Client) error { _, err := cl.Scan(ctx, remote.ScanRequest{}, nil); return err },
			want: []error{remote.ErrUnsafePath},
		},
		{
			name: "scan sends a concord temporary file",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wScanItems{Changes: []wChange{{Path: "d/.concord-tmp-99999999-1-0", New: toWire(tenBytes)}}}, nil)
				return p.send(tReply, req.ID, &wScanReply{}, nil)
			},
			call: func(cl *Client) error { _, err := cl.Scan(ctx, remote.ScanRequest{}, nil); return err },
			want: []error{remote.ErrUnsafePath},
		},
		{
			name: "scan skips a path with a NUL",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wScanItems{Skipped: []wProblem{{Path: "a\x00b", Err: "x"}}}, nil)
				return p.send(tReply, req.ID, &wScanReply{}, nil)
			},
			call: func(cl *Client) error { _, err := cl.Scan(ctx, remote.ScanRequest{}, nil); return err },
			want: []error{remote.ErrUnsafePath},
		},
		{
			name: "scan announces hashing ../x",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wScanItems{Hashing: []wChange{{Path: "../x", Old: toWire(tenBytes), New: toWire(tenBytes)}}}, nil)
				return p.send(tReply, req.ID, &wScanReply{}, nil)
			},
			call: func(cl *Client) error {
				_, err := cl.Scan(ctx, remote.ScanRequest{Hashing: func(string, *state.Entry, *state.Entry) {
					t.Error("the callback saw an unsafe path")
				}}, nil)
				return err
			},
			want: []error{remote.ErrUnsafePath},
		},
		{
			name: "scan announces hashing a directory",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wScanItems{Hashing: []wChange{{Path: "d", Old: dirEntry, New: dirEntry}}}, nil)
				return p.send(tReply, req.ID, &wScanReply{}, nil)
			},
			call: func(cl *Client) error {
				_, err := cl.Scan(ctx, remote.ScanRequest{Hashing: func(string, *state.Entry, *state.Entry) {
					t.Error("the callback saw a directory")
				}}, nil)
				return err
			},
			want:  []error{ErrProtocol},
			fatal: true,
		},
		{
			name: "archive lists /etc/passwd",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wPathEntries{Entries: []wPathEntry{{Path: "/etc/passwd", Entry: dirEntry}}}, nil)
				return p.send(tReply, req.ID, wEmpty{}, nil)
			},
			call: func(cl *Client) error {
				return cl.ArchiveList(ctx, func(string, *state.Entry) error {
					t.Error("the callback saw an unsafe path")
					return nil
				})
			},
			want: []error{remote.ErrUnsafePath},
		},
		{
			name: "list answers with a path outside the listed directory",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wPathEntries{Entries: []wPathEntry{{Path: "a", Entry: dirEntry}, {Path: "b/c", Entry: dirEntry}}}, nil)
				return p.send(tReply, req.ID, wEmpty{}, nil)
			},
			call: func(cl *Client) error { _, err := cl.List(ctx, "a"); return err },
			want: []error{remote.ErrUnsafePath},
		},
		{
			name: "oversized frame",
			script: func(p *rawPeer, req *frame) error {
				_, err := p.conn.Write([]byte{0x3f, 0xff, 0xff, 0xff})
				return err
			},
			call:  func(cl *Client) error { _, err := cl.Hello(ctx); return err },
			want:  []error{ErrProtocol, remote.ErrFatal},
			fatal: true,
		},
		{
			name: "compressed frame expanding past the limit",
			script: func(p *rawPeer, req *frame) error {
				_, err := p.conn.Write(bomb)
				return err
			},
			call:  func(cl *Client) error { _, err := cl.Hello(ctx); return err },
			want:  []error{ErrProtocol, remote.ErrFatal},
			fatal: true,
		},
		{
			name: "garbage frame",
			script: func(p *rawPeer, req *frame) error {
				_, err := p.conn.Write([]byte{0, 0, 0, 3, 0xff, 0xff, 0xff})
				return err
			},
			call:  func(cl *Client) error { _, err := cl.Hello(ctx); return err },
			want:  []error{ErrProtocol, remote.ErrFatal},
			fatal: true,
		},
		{
			name: "file longer than the scan saw",
			script: func(p *rawPeer, req *frame) error {
				p.send(tReply, req.ID, wEmpty{}, nil)
				p.send(tData, req.ID, nil, bytes.Repeat([]byte("x"), 100))
				return p.send(tEnd, req.ID, nil, nil)
			},
			call: readAll,
			want: []error{remote.ErrChanged},
		},
		{
			name: "file shorter than the scan saw",
			script: func(p *rawPeer, req *frame) error {
				p.send(tReply, req.ID, wEmpty{}, nil)
				p.send(tData, req.ID, nil, []byte("12345"))
				return p.send(tEnd, req.ID, nil, nil)
			},
			call: readAll,
			want: []error{remote.ErrChanged},
		},
		{
			name: "connection lost in the middle of a file",
			script: func(p *rawPeer, req *frame) error {
				p.send(tReply, req.ID, wEmpty{}, nil)
				p.send(tData, req.ID, nil, []byte("12345"))
				return errors.New("the remote dies")
			},
			call:  readAll,
			want:  []error{remote.ErrFatal},
			fatal: true,
		},
		{
			name: "data beyond the window",
			script: func(p *rawPeer, req *frame) error {
				p.send(tReply, req.ID, wEmpty{}, nil)
				for range 3 * window {
					if err := p.send(tData, req.ID, nil, []byte("x")); err != nil {
						return err
					}
				}
				return nil
			},
			call: func(cl *Client) error {
				rc, err := cl.ReadFile(ctx, "f", &state.Entry{Kind: state.File, Size: 1 << 20})
				if err != nil {
					return err
				}
				defer rc.Close()
				<-cl.c.done // do not read: let the frames pile up
				_, err = io.ReadAll(rc)
				return err
			},
			want:  []error{ErrProtocol, remote.ErrFatal},
			fatal: true,
		},
		{
			name: "entry of an unknown kind",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wEntries{Entries: []*wEntry{{Kind: 9, Hash: make([]byte, 32)}}}, nil)
				return p.send(tReply, req.ID, wEmpty{}, nil)
			},
			call:  func(cl *Client) error { _, err := cl.Stat(ctx, []string{"a"}); return err },
			want:  []error{ErrProtocol, remote.ErrFatal},
			fatal: true,
		},
		{
			name: "more stat results than paths",
			script: func(p *rawPeer, req *frame) error {
				p.send(tItems, req.ID, &wEntries{Entries: []*wEntry{nil, nil}}, nil)
				return p.send(tReply, req.ID, wEmpty{}, nil)
			},
			call:  func(cl *Client) error { _, err := cl.Stat(ctx, []string{"a"}); return err },
			want:  []error{ErrProtocol, remote.ErrFatal},
			fatal: true,
		},
		{
			name: "server sends a request",
			script: func(p *rawPeer, req *frame) error {
				return p.send(tApply, req.ID, wEmpty{}, nil)
			},
			call:  func(cl *Client) error { _, err := cl.Hello(ctx); return err },
			want:  []error{ErrProtocol, remote.ErrFatal},
			fatal: true,
		},
		{
			name: "signature of another size",
			script: func(p *rawPeer, req *frame) error {
				sig, _ := delta.Signature(bytes.NewReader(make([]byte, 5000)), 5000)
				var b bytes.Buffer
				sig.Encode(&b)
				p.send(tReply, req.ID, wEmpty{}, nil)
				p.send(tData, req.ID, nil, b.Bytes())
				return p.send(tEnd, req.ID, nil, nil)
			},
			call: func(cl *Client) error { _, err := cl.Signature(ctx, "f", tenBytes); return err },
			want: []error{delta.ErrCorrupt},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runtime.GC()
			cl := hostileClient(t, func(p *rawPeer, req *frame) error {
				if req.Type == tHello && !tt.fatal {
					return p.send(tReply, req.ID, &wInfo{}, nil)
				}
				return tt.script(p, req)
			})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := tt.call(cl)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("the client accepted it")
			}
			t.Logf("refused: %v", err)
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not match %v", err, w)
				}
			}
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
				t.Errorf("the client allocated %d bytes refusing it", grown)
			}
			_, err = cl.Hello(ctx)
			if tt.fatal && !errors.Is(err, remote.ErrFatal) {
				t.Errorf("after a broken protocol, Hello = %v, want a fatal error", err)
			}
			if !tt.fatal && err != nil {
				t.Errorf("after a refused reply, Hello = %v, want the connection still usable", err)
			}
		})
	}
}

// TestLostConnectionNamesRemote: when the link dies or the remote breaks
// the protocol in the middle of a run, the message names the remote given
// with WithName, once, whichever request saw it, and without the class
// prefix ("fatal: ") that people's output drops at the start of a line.
func TestLostConnectionNamesRemote(t *testing.T) {
	ctx := context.Background()
	const name = "ssh://web1/srv/www"
	for _, tt := range []struct {
		what   string
		script func(p *rawPeer, req *frame) error
		want   string
	}{
		{"connection lost", func(p *rawPeer, req *frame) error { return errors.New("the remote dies") }, "closed the connection unexpectedly"},
		{"protocol broken", func(p *rawPeer, req *frame) error { return p.send(tApply, req.ID, wEmpty{}, nil) }, "broke the protocol"},
		{"fatal error on the remote", func(p *rawPeer, req *frame) error {
			err := fmt.Errorf("%w: archive /home/u/.local/state/concord/ar-1.db is damaged", remote.ErrFatal)
			return p.send(tError, req.ID, encodeError(err), nil)
		}, ": archive /home/u/.local/state/concord/ar-1.db is damaged"},
	} {
		t.Run(tt.what, func(t *testing.T) {
			cl := hostileClient(t, func(p *rawPeer, req *frame) error {
				if req.Type == tHello {
					return p.send(tReply, req.ID, &wInfo{}, nil)
				}
				return tt.script(p, req)
			}, WithName(name))
			if _, err := cl.Hello(ctx); err != nil {
				t.Fatalf("Hello: %v", err)
			}
			_, err := cl.Stat(ctx, []string{"a"})
			if !errors.Is(err, remote.ErrFatal) {
				t.Fatalf("Stat on a lost connection = %v, want a fatal error", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, name+": ") || strings.Count(msg, name) != 1 || !strings.Contains(msg, tt.want) || strings.Contains(msg, "fatal") {
				t.Errorf("message %q: want it to start with %q, once, and say %q", msg, name+": ", tt.want)
			}
		})
	}
	// An item's error is the item's: its line names the path and side.
	cl := hostileClient(t, func(p *rawPeer, req *frame) error {
		if req.Type == tHello {
			return p.send(tReply, req.ID, &wInfo{}, nil)
		}
		return p.send(tError, req.ID, encodeError(fmt.Errorf("f.txt: %w", remote.ErrChanged)), nil)
	}, WithName(name))
	_, err := cl.Stat(ctx, []string{"f.txt"})
	if !errors.Is(err, remote.ErrChanged) || errors.Is(err, remote.ErrFatal) || strings.Contains(err.Error(), name) {
		t.Errorf("an item's error = %q, want it as the remote said it", err)
	}
}

func TestFrameTooLargeIsRefusedBeforeAllocating(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readFrame(bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xff}))
	runtime.ReadMemStats(&after)
	var tooLarge *FrameTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Size != 0x7fffffff {
		t.Fatalf("readFrame = %v, want a FrameTooLargeError", err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 1<<20 {
		t.Fatalf("refusing an oversized frame allocated %d bytes", grown)
	}
}

// TestServerRefusesProtocolBreaks drives Serve with a hostile client.
func TestServerRefusesProtocolBreaks(t *testing.T) {
	tests := []struct {
		name  string
		write func(w io.Writer)
	}{
		{"oversized frame", func(w io.Writer) { w.Write([]byte{0x7f, 0, 0, 0}) }},
		{"reply frame from the client", func(w io.Writer) {
			b, _ := encodeFrame(&frame{Type: tReply, ID: 1}, false)
			w.Write(b)
		}},
		{"data beyond the window", func(w io.Writer) {
			b, _ := encodeFrame(&frame{Type: tApply, ID: 1, Body: mustBody(&wOp{Kind: uint8(remote.OpPut), Path: "slow"})}, false)
			w.Write(b)
			for range 3 * window {
				b, _ := encodeFrame(&frame{Type: tData, ID: 1, Data: []byte("x")}, false)
				w.Write(b)
			}
		}},
		{"more requests at once than the server runs", func(w io.Writer) {
			for id := uint64(1); id <= serverInflight+1; id++ {
				b, _ := encodeFrame(&frame{Type: tApply, ID: id, Body: mustBody(&wOp{Kind: uint8(remote.OpPut), Path: "slow"})}, false)
				if _, err := w.Write(b); err != nil {
					return
				}
			}
		}},
		{"request id reused", func(w io.Writer) {
			b, _ := encodeFrame(&frame{Type: tApply, ID: 1, Body: mustBody(&wOp{Kind: uint8(remote.OpPut), Path: "slow"})}, false)
			w.Write(b)
			w.Write(b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newFake()
			ep.failWith = nil
			a, b := net.Pipe()
			served := make(chan error, 1)
			go func() { served <- Serve(context.Background(), b, &slowApplyEP{ep}); b.Close() }()
			// Read everything the server sends, as a client would.
			go io.Copy(io.Discard, a)
			setup, _ := encodeFrame(&frame{Type: tSetup, Body: mustBody(&wSetup{})}, false)
			a.Write(append(hello(), setup...))
			tt.write(a)
			err := <-served
			a.Close()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Serve = %v, want ErrProtocol", err)
			}
			if ep.closed.Load() == 0 {
				t.Fatal("Serve did not close the endpoint")
			}
		})
	}
}

// slowApplyEP never reads the content of a put, so that a client's data
// piles up.
type slowApplyEP struct{ *fakeEP }

func (s *slowApplyEP) Apply(ctx context.Context, op remote.Op, content io.Reader) (*state.Entry, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestServerRefusesMisplacedInlineData sends apply requests whose frame
// data the protocol does not allow: contents on an apply not marked
// inline, and inline contents on an operation that is not a plain put.
// Each is refused with an error reply and nothing is applied.
func TestServerRefusesMisplacedInlineData(t *testing.T) {
	tests := []struct {
		name string
		op   wOp
	}{
		{"data without the inline flag", wOp{Kind: uint8(remote.OpPut), Path: "f", New: toWire(fileEntry([]byte("abc")))}},
		{"inline mkdir", wOp{Kind: uint8(remote.OpMkdir), Path: "d", New: toWire(&state.Entry{Kind: state.Dir, Mode: 0o755}), Inline: true}},
		{"inline delta", wOp{Kind: uint8(remote.OpPut), Path: "f", New: toWire(fileEntry([]byte("abc"))), Delta: true, Inline: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newFake()
			err := refusal(t, ep, &frame{Type: tApply, ID: 1, Body: mustBody(&tt.op), Data: []byte("abc")})
			if !strings.Contains(err.Error(), "inline") {
				t.Errorf("error %v does not say what was wrong", err)
			}
			if ep.content("f") != nil {
				t.Error("a file was installed")
			}
		})
	}
}

// TestServerRefusesBadStage sends apply requests whose stage field does not
// fit the operation: each is refused with an error reply naming the stage,
// and the endpoint sees nothing.
func TestServerRefusesBadStage(t *testing.T) {
	abc := toWire(fileEntry([]byte("abc")))
	tests := []struct {
		name string
		op   wOp
	}{
		{"unknown stage", wOp{Kind: uint8(remote.OpPut), Path: "f", New: abc, Delta: true, Stage: 3}},
		{"staging a whole file", wOp{Kind: uint8(remote.OpPut), Path: "f", New: abc, Stage: 1}},
		{"staging a mkdir", wOp{Kind: uint8(remote.OpMkdir), Path: "d", New: toWire(&state.Entry{Kind: state.Dir, Mode: 0o755}), Delta: true, Stage: 1}},
		{"installing a delta", wOp{Kind: uint8(remote.OpPut), Path: "f", New: abc, Delta: true, Stage: 2}},
		{"installing a removal", wOp{Kind: uint8(remote.OpRemove), Path: "f", Expect: abc, Stage: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newFake()
			err := refusal(t, ep, &frame{Type: tApply, ID: 1, Body: mustBody(&tt.op)})
			if !strings.Contains(err.Error(), "stage") {
				t.Errorf("error %v does not say what was wrong", err)
			}
			if ep.content("f") != nil {
				t.Error("a file was installed")
			}
		})
	}
}

// TestServerRefusesBadPutBatches sends put-batch requests that do not add
// up: each is refused with an error reply, and nothing is installed.
func TestServerRefusesBadPutBatches(t *testing.T) {
	abc := toWire(fileEntry([]byte("abc")))
	put := func(p string) wOp { return wOp{Kind: uint8(remote.OpPut), Path: p, New: abc, Inline: true} }
	many := make([]wOp, maxPutBatch+1)
	for i := range many {
		many[i] = put("f")
	}
	tests := []struct {
		name string
		ops  []wOp
		data string
		want string
	}{
		{"contents shorter than the files", []wOp{put("f"), put("g")}, "abcab", "shorter"},
		{"contents longer than the files", []wOp{put("f")}, "abcd", "longer"},
		{"no files", nil, "", "put-batch of 0"},
		{"too many files", many, strings.Repeat("abc", maxPutBatch+1), "put-batch of 65"},
		{"a delta", []wOp{{Kind: uint8(remote.OpPut), Path: "f", New: abc, Delta: true}}, "abc", "whole-file"},
		{"a removal", []wOp{{Kind: uint8(remote.OpRemove), Path: "f", Expect: abc}}, "", "whole-file"},
		{"an unsafe path", []wOp{put("f"), put("../escape")}, "abcabc", "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newFake()
			err := refusal(t, ep, &frame{Type: tPutBatch, ID: 1, Body: mustBody(&wPutBatch{Ops: tt.ops}), Data: []byte(tt.data)})
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if ep.content("f") != nil || ep.content("g") != nil {
				t.Error("a file was installed")
			}
		})
	}
}

// refusal sends req (request 1) to Serve(ep) as a raw client and returns
// the error the server answers with; any other answer fails the test.
func refusal(t *testing.T, ep remote.Endpoint, req *frame) error {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close() })
	go func() { Serve(context.Background(), b, ep); b.Close() }()
	setup, _ := encodeFrame(&frame{Type: tSetup, Body: mustBody(&wSetup{})}, false)
	go func() {
		a.Write(append(hello(), setup...))
		raw, _ := encodeFrame(req, false)
		a.Write(raw)
	}()
	br := bufio.NewReader(a)
	if err := readServerHello(br); err != nil {
		t.Fatal(err)
	}
	f, err := readFrame(br)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != tError || f.ID != req.ID {
		t.Fatalf("the server answered %s for request %d, want an error for request %d", f.Type, f.ID, req.ID)
	}
	return decodeError(f)
}

// TestServerRefusesUnknownConfirm sends a read-delta whose confirm mode no
// version defines: it is refused before the signature is read.
func TestServerRefusesUnknownConfirm(t *testing.T) {
	ep := newFake()
	e := ep.put("f", []byte("abc"))
	req := wPathExpect{Path: "f", Expect: toWire(e), BasisSize: 3, Confirm: 2}
	err := refusal(t, ep, &frame{Type: tReadDelta, ID: 1, Body: mustBody(&req)})
	if !strings.Contains(err.Error(), "unknown confirm mode 2") {
		t.Errorf("error %v does not say what was wrong", err)
	}
}
