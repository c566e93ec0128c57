package wire

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"testing"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// seedFrames returns well-formed frames of every kind, for the corpora.
func seedFrames() [][]byte {
	frames := []*frame{
		{Type: tReply, ID: 1, Body: mustBody(&wScanReply{Entries: 3})},
		{Type: tItems, ID: 1, Body: mustBody(&wScanItems{Changes: []wChange{{Path: "a", New: dirEntry}}})},
		{Type: tItems, ID: 1, Body: mustBody(&wScanItems{Hashing: []wChange{{Path: "big", Old: toWire(&state.Entry{Kind: state.File, Size: 1 << 20}), New: toWire(&state.Entry{Kind: state.File, Size: 2 << 20})}}})},
		{Type: tItems, ID: 1, Body: mustBody(&wPathEntries{Entries: []wPathEntry{{Path: "a", Entry: dirEntry}}})},
		{Type: tItems, ID: 1, Body: mustBody(&wEntries{Entries: []*wEntry{dirEntry, nil}})},
		{Type: tData, ID: 1, Data: []byte("hello")},
		{Type: tEnd, ID: 1},
		{Type: tError, ID: 1, Body: mustBody(encodeError(remote.ErrChanged))},
		{Type: tCredit, ID: 1, Body: mustBody(&wCredit{N: 1})},
		{Type: tProgress, ID: 1, Body: mustBody(&wProgress{Entries: 1})},
		{Type: tReply, ID: 1, Body: mustBody(&wInfo{ReplicaID: "r"})},
	}
	var out [][]byte
	for _, f := range frames {
		b, err := encodeFrame(f, false)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzFrameDecode feeds arbitrary bytes to the frame reader and every body
// decoder: no panic, no allocation beyond the limits, and what decodes
// re-encodes to a frame that decodes the same.
func FuzzFrameDecode(f *testing.F) {
	for _, b := range seedFrames() {
		f.Add(b)
	}
	f.Add(makeBomb())
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := readFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		bodies := []any{new(wInfo), new(wOpenRequest), new(wOpenReply), new(wProgress), new(wScanItems),
			new(wScanReply), new(wPathEntries), new(wPaths), new(wEntries), new(wPathExpect), new(wOp),
			new(wApplyReply), new(wRecords), new(wCredit), new(wSetup), new(errBody), new(wPutBatch), new(wPutBatchReply)}
		for _, v := range bodies {
			if unmarshalBody(fr, v) != nil {
				continue
			}
			switch b := v.(type) {
			case *wScanItems:
				for _, c := range b.Changes {
					fromWire(c.Old)
					fromWire(c.New)
					state.ValidatePath(c.Path)
				}
			case *wEntries:
				for _, e := range b.Entries {
					fromWire(e)
				}
			case *wOp:
				fromWire(b.Expect)
				fromWire(b.New)
			}
		}
		if fr.Type == tError {
			decodeError(fr)
		}
		again, err := encodeFrame(fr, false)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		fr2, err := readFrame(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("a re-encoded frame does not decode: %v", err)
		}
		if fr2.Type != fr.Type || fr2.ID != fr.ID || !bytes.Equal(fr2.Data, fr.Data) {
			t.Fatal("the frame changed in a round trip")
		}
	})
}

// FuzzClientReplies runs a client call against a peer that answers with
// arbitrary bytes after a correct handshake: the client must fail cleanly
// (or succeed) and never panic or hang.
func FuzzClientReplies(f *testing.F) {
	for i, b := range seedFrames() {
		f.Add(uint8(i), b)
	}
	f.Fuzz(func(t *testing.T, which uint8, reply []byte) {
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer b.Close()
			p := &rawPeer{conn: b, br: bufio.NewReader(b)}
			if p.handshake() != nil {
				return
			}
			go io.Copy(io.Discard, p.br)
			b.Write(reply)
		}()
		cl := NewClient(a).(*Client)
		ctx := context.Background()
		expect := &state.Entry{Kind: state.File, Size: 5}
		switch which % 7 {
		case 0:
			cl.Scan(ctx, remote.ScanRequest{Hashing: func(p string, old, cur *state.Entry) {
				if validPath(p) != nil || old == nil || cur == nil || old.Kind != state.File || cur.Kind != state.File {
					t.Errorf("Scan announced %q (%v, %v): want a safe path and two files", p, old, cur)
				}
			}}, func(remote.ScanProgress) {})
		case 1:
			cl.ArchiveList(ctx, func(p string, e *state.Entry) error {
				if validPath(p) != nil {
					t.Errorf("ArchiveList passed on the unsafe path %q", p)
				}
				return nil
			})
		case 2:
			cl.List(ctx, "a")
		case 3:
			cl.Stat(ctx, []string{"a", "b"})
		case 4:
			if rc, err := cl.ReadFile(ctx, "a", expect); err == nil {
				io.Copy(io.Discard, rc)
				rc.Close()
			}
		case 5:
			cl.Signature(ctx, "a", expect)
		case 6:
			cl.Hello(ctx)
		}
		cl.Close()
		<-done
	})
}

// FuzzServe runs Serve against a client that sends arbitrary frames after
// a correct handshake: Serve must return, never panic, and never hand the
// endpoint an unsafe path.
func FuzzServe(f *testing.F) {
	hello5 := []byte("hello")
	sig, err := delta.Signature(bytes.NewReader(hello5), int64(len(hello5)))
	if err != nil {
		f.Fatal(err)
	}
	var sigEnc bytes.Buffer
	if err := sig.Encode(&sigEnc); err != nil {
		f.Fatal(err)
	}
	ops := []*frame{
		{Type: tApply, ID: 1, Body: mustBody(&wOp{Kind: uint8(remote.OpPut), Path: "a", New: dirEntry})},
		{Type: tData, ID: 1, Data: []byte("x")},
		{Type: tEnd, ID: 1},
		{Type: tStat, ID: 2, Body: mustBody(&wPaths{Paths: []string{"a", "../b"}})},
		{Type: tReadFile, ID: 3, Body: mustBody(&wPathExpect{Path: "a"})},
		{Type: tCommit, ID: 4, Body: mustBody(&wRecords{Records: []wRecord{{Path: "a"}}})},
		{Type: tApply, ID: 5, Body: mustBody(&wOp{Kind: uint8(remote.OpPut), Path: "small", New: toWire(fileEntry([]byte("abc"))), Inline: true}), Data: []byte("abc")},
		{Type: tPutBatch, ID: 6, Body: mustBody(&wPutBatch{Ops: []wOp{
			{Kind: uint8(remote.OpPut), Path: "b1", New: toWire(fileEntry([]byte("ab"))), Inline: true},
			{Kind: uint8(remote.OpPut), Path: "b2", New: toWire(fileEntry([]byte("cde"))), Inline: true},
		}}), Data: []byte("abcde")},
		{Type: tApply, ID: 7, Body: mustBody(&wOp{Kind: uint8(remote.OpPut), Path: "a", Expect: toWire(fileEntry([]byte("abc"))), New: toWire(fileEntry([]byte("abd"))), Delta: true, Stage: 1})},
		{Type: tData, ID: 7, Data: []byte("not a delta")},
		{Type: tEnd, ID: 7},
		{Type: tApply, ID: 8, Body: mustBody(&wOp{Kind: uint8(remote.OpPut), Path: "a", Expect: toWire(fileEntry([]byte("abc"))), New: toWire(fileEntry([]byte("abd"))), Stage: 2})},
		{Type: tEnd, ID: 8},
		{Type: tReadDelta, ID: 9, Body: mustBody(&wPathExpect{Path: "a", Expect: toWire(fileEntry(hello5)), BasisSize: int64(len(hello5)), Confirm: uint8(delta.ConfirmResync)})},
		{Type: tData, ID: 9, Data: sigEnc.Bytes()},
		{Type: tEnd, ID: 9},
	}
	var all []byte
	for _, fr := range ops {
		b, _ := encodeFrame(fr, false)
		f.Add(b)
		all = append(all, b...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		ep := &pathCheckingEP{fakeEP: newFake(), t: t}
		ep.put("a", []byte("hello"))
		a, b := net.Pipe()
		served := make(chan error, 1)
		go func() { served <- Serve(context.Background(), b, ep); b.Close() }()
		go io.Copy(io.Discard, a)
		setup, _ := encodeFrame(&frame{Type: tSetup, Body: mustBody(&wSetup{})}, false)
		a.Write(append(hello(), setup...))
		a.Write(data)
		a.Close()
		<-served
	})
}

// pathCheckingEP fails the test if it is given an unsafe path.
type pathCheckingEP struct {
	*fakeEP
	t *testing.T
}

func (e *pathCheckingEP) check(p string) {
	if p != "" && validPath(p) != nil {
		e.t.Errorf("the endpoint was given the unsafe path %q", p)
	}
}

func (e *pathCheckingEP) Stat(ctx context.Context, paths []string) ([]*state.Entry, error) {
	for _, p := range paths {
		e.check(p)
	}
	return e.fakeEP.Stat(ctx, paths)
}

func (e *pathCheckingEP) ReadFile(ctx context.Context, p string, expect *state.Entry) (io.ReadCloser, error) {
	e.check(p)
	return e.fakeEP.ReadFile(ctx, p, expect)
}

func (e *pathCheckingEP) Apply(ctx context.Context, op remote.Op, content io.Reader) (*state.Entry, error) {
	e.check(op.Path)
	return e.fakeEP.Apply(ctx, op, content)
}

func (e *pathCheckingEP) List(ctx context.Context, p string) ([]remote.PathEntry, error) {
	e.check(p)
	return e.fakeEP.List(ctx, p)
}

func (e *pathCheckingEP) Commit(ctx context.Context, recs []remote.Record) error {
	for _, r := range recs {
		e.check(r.Path)
	}
	return e.fakeEP.Commit(ctx, recs)
}
