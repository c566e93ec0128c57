package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// Server limits.
const (
	// serverInflight is how many requests the server runs at once; a
	// client sending more breaks the protocol (clients keep to
	// maxInflight).
	serverInflight = 2048
	// progressEvery is the least time between two scan progress frames.
	progressEvery = 100 * time.Millisecond
)

// Serve answers the protocol on rw (in `concord serve`, standard input and
// output) with ep, until the client closes the connection, ctx is done, or
// the client breaks the protocol. Every path the client sends is checked
// with state.ValidatePath, and for a component that is one of concord's
// temporary file names, before ep sees it; an unsafe one is refused with
// an error wrapping remote.ErrUnsafePath. Requests run concurrently, so ep
// must accept concurrent calls (as remote.Endpoint requires).
//
// Serve closes ep before it returns (when the client asks, and in any case
// at the end, so that a lost connection still releases the pair lock). It
// returns nil when the client closed the connection cleanly. When ctx ends
// first, Serve returns without waiting for rw; the caller closes it.
func Serve(ctx context.Context, rw io.ReadWriter, ep remote.Endpoint) error {
	c := newConn(rw, rw)
	defer ep.Close()

	werr := make(chan error, 1)
	go func() {
		_, err := c.bw.Write(hello())
		if err == nil {
			err = c.bw.Flush()
		}
		werr <- err
	}()
	if err := readClientHello(c.br); err != nil {
		waitOr(ctx, werr)
		return err
	}
	if err := waitOr(ctx, werr); err != nil {
		return fmt.Errorf("write the handshake to the client: %w", err)
	}
	f, err := readFrame(c.br)
	if err != nil {
		return fmt.Errorf("read the client's setup: %w", err)
	}
	if f.Type != tSetup {
		return fmt.Errorf("%w: the client's first frame is %s, not setup", ErrProtocol, f.Type)
	}
	var setup wSetup
	if err := unmarshalBody(f, &setup); err != nil {
		return err
	}
	c.compress = setup.Compress

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &server{c: c, ep: ep}
	go c.writeLoop()
	readErr := make(chan error, 1)
	go func() { readErr <- s.readLoop(ctx) }()
	select {
	case err = <-readErr:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	s.wg.Wait()
	s.stopWorkers()
	c.stopWriter()
	if err == nil {
		err = ep.Close()
	}
	return err
}

func waitOr(ctx context.Context, ch chan error) error {
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type server struct {
	c  *conn
	ep remote.Endpoint
	wg sync.WaitGroup

	// Handlers run on a pool of goroutines that grows as requests overlap
	// and stays for the session: a fresh goroutine per request had to grow
	// its stack (decoding and the file system calls run deep) for each of
	// 20,000 small files, 7% of the server's time.
	mu    sync.Mutex
	idle  int
	work  chan func()
	close sync.Once
}

// run runs fn on an idle pool goroutine, or a new one.
func (s *server) run(fn func()) {
	s.mu.Lock()
	if s.work == nil {
		s.work = make(chan func())
	}
	spawn := s.idle == 0
	if !spawn {
		s.idle--
	}
	s.mu.Unlock()
	if spawn {
		go s.worker(fn)
		return
	}
	s.work <- fn
}

func (s *server) worker(fn func()) {
	for {
		fn()
		s.mu.Lock()
		s.idle++
		s.mu.Unlock()
		var ok bool
		if fn, ok = <-s.work; !ok {
			return
		}
	}
}

// stopWorkers ends the pool once no handler runs.
func (s *server) stopWorkers() {
	s.close.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.work != nil {
			close(s.work)
		}
	})
}

// readLoop reads the client's frames, starting a handler per request.
func (s *server) readLoop(ctx context.Context) error {
	for {
		f, err := readFrame(s.c.br)
		if err == io.EOF {
			s.c.fail(errors.New("the client closed the connection"))
			return nil
		}
		if err != nil {
			err = fmt.Errorf("read from the client: %w", err)
			s.c.fail(err)
			return err
		}
		switch {
		case f.Type.isRequest():
			err = s.start(ctx, f)
		case f.Type == tData || f.Type == tEnd || f.Type == tCredit || f.Type == tCancel:
			err = s.c.deliver(f)
		default:
			err = fmt.Errorf("%w: the client sent a %s frame", ErrProtocol, f.Type)
		}
		if err != nil {
			s.c.fail(err)
			return err
		}
	}
}

// start registers a request and runs its handler.
func (s *server) start(ctx context.Context, f *frame) error {
	st := newStream(f.ID)
	hctx, cancel := context.WithCancel(ctx)
	st.cancel = cancel
	s.c.mu.Lock()
	if _, dup := s.c.streams[f.ID]; dup {
		s.c.mu.Unlock()
		cancel()
		return fmt.Errorf("%w: request %d reused while running", ErrProtocol, f.ID)
	}
	if len(s.c.streams) >= serverInflight {
		s.c.mu.Unlock()
		cancel()
		return fmt.Errorf("%w: more than %d requests at once", ErrProtocol, serverInflight)
	}
	s.c.streams[f.ID] = st
	s.c.mu.Unlock()
	s.wg.Add(1)
	s.run(func() {
		defer s.wg.Done()
		defer s.c.remove(st)
		defer cancel()
		reply, err := s.handle(hctx, st, f)
		switch {
		case err != nil:
			s.c.send(tError, st.id, encodeError(err), nil)
		case reply != nil:
			s.c.send(tReply, st.id, reply, nil)
		}
	})
	return nil
}

// serverCheckPath refuses a path from the client that could leave the
// root, or that names a concord temporary file (see validPath).
func serverCheckPath(p string, rootOK bool) error {
	if p == "" && rootOK {
		return nil
	}
	if err := validPath(p); err != nil {
		return fmt.Errorf("refused: %w: %w", err, remote.ErrUnsafePath)
	}
	return nil
}

// batcher gathers items into frames of bounded size.
type batcher[T any] struct {
	items []T
	bytes int
	send  func([]T) error
}

func (b *batcher[T]) add(it T, size int) error {
	if len(b.items) > 0 && (len(b.items) >= maxBatchItems || b.bytes+size > maxBatchBytes) {
		if err := b.flush(); err != nil {
			return err
		}
	}
	b.items = append(b.items, it)
	b.bytes += size
	return nil
}

func (b *batcher[T]) flush() error {
	if len(b.items) == 0 {
		return nil
	}
	err := b.send(b.items)
	b.items, b.bytes = b.items[:0], 0
	return err
}

func entrySize(e *state.Entry) int {
	if e == nil {
		return 1
	}
	return 100 + len(e.Target)
}

// handle runs one request and returns the reply to send (nil when the
// handler sent everything itself).
func (s *server) handle(ctx context.Context, st *stream, f *frame) (any, error) {
	c := s.c
	items := func(body any) error { return c.sendStream(ctx, st, tItems, body, nil) }
	switch f.Type {
	case tHello:
		info, err := s.ep.Hello(ctx)
		if err != nil {
			return nil, err
		}
		return &wInfo{ReplicaID: info.ReplicaID, Host: info.Host, Root: info.Root, Protocol: info.Protocol, Version: info.Version}, nil

	case tOpen:
		var req wOpenRequest
		if err := unmarshalBody(f, &req); err != nil {
			return nil, err
		}
		rep, err := s.ep.Open(ctx, remote.OpenRequest{PeerID: req.PeerID, PeerRoot: req.PeerRoot, Ignore: req.Ignore,
			DryRun: req.DryRun, BackupDir: req.BackupDir, MaxBackups: req.MaxBackups})
		if err != nil {
			return nil, err
		}
		return &wOpenReply{PairID: rep.PairID, Digest: rep.Digest[:], Entries: rep.Entries, Path: rep.Path}, nil

	case tScan:
		var mu sync.Mutex
		var last time.Time
		progress := func(p remote.ScanProgress) {
			mu.Lock()
			now := time.Now()
			if now.Sub(last) < progressEvery {
				mu.Unlock()
				return
			}
			last = now
			mu.Unlock()
			c.send(tProgress, st.id, &wProgress{Entries: p.Entries, Hashed: p.Hashed, HashedBytes: p.HashedBytes}, nil)
		}
		// Large files about to be hashed are announced at once, one
		// batch each, so that the client can prepare their deltas (a
		// signature of its own copy) while this side reads them. The
		// scanner calls this from several goroutines.
		var hintMu sync.Mutex
		hashing := func(p string, old, cur *state.Entry) {
			if old.Size < remote.HashingMin || cur.Size < remote.HashingMin {
				return
			}
			hintMu.Lock()
			defer hintMu.Unlock()
			// A failure to send shows again when the reply is sent.
			_ = items(&wScanItems{Hashing: []wChange{{Path: p, Old: toWire(old), New: toWire(cur)}}})
		}
		rep, err := s.ep.Scan(ctx, remote.ScanRequest{Hashing: hashing}, progress)
		if err != nil {
			return nil, err
		}
		hintMu.Lock() // no announcement may interleave with the batches below
		defer hintMu.Unlock()
		changes := &batcher[wChange]{send: func(b []wChange) error { return items(&wScanItems{Changes: b}) }}
		for _, ch := range rep.Changes {
			if err := changes.add(wChange{Path: ch.Path, Old: toWire(ch.Old), New: toWire(ch.New), Below: ch.Below},
				len(ch.Path)+entrySize(ch.Old)+entrySize(ch.New)); err != nil {
				return nil, err
			}
		}
		if err := changes.flush(); err != nil {
			return nil, err
		}
		skipped := &batcher[wProblem]{send: func(b []wProblem) error { return items(&wScanItems{Skipped: b}) }}
		for _, p := range rep.Skipped {
			if err := skipped.add(wProblem{Path: p.Path, Err: p.Err, Warning: p.Warning}, len(p.Path)+len(p.Err)+8); err != nil {
				return nil, err
			}
		}
		if err := skipped.flush(); err != nil {
			return nil, err
		}
		return &wScanReply{Entries: rep.Entries, Hashed: rep.Hashed, HashedBytes: rep.HashedBytes}, nil

	case tArchiveList:
		b := &batcher[wPathEntry]{send: func(b []wPathEntry) error { return items(&wPathEntries{Entries: b}) }}
		err := s.ep.ArchiveList(ctx, func(p string, e *state.Entry) error {
			return b.add(wPathEntry{Path: p, Entry: toWire(e)}, len(p)+entrySize(e))
		})
		if err == nil {
			err = b.flush()
		}
		if err != nil {
			return nil, err
		}
		return wEmpty{}, nil

	case tStat:
		var req wPaths
		if err := unmarshalBody(f, &req); err != nil {
			return nil, err
		}
		for _, p := range req.Paths {
			if err := serverCheckPath(p, true); err != nil {
				return nil, err
			}
		}
		es, err := s.ep.Stat(ctx, req.Paths)
		if err != nil {
			return nil, err
		}
		if len(es) != len(req.Paths) {
			return nil, fmt.Errorf("stat: the endpoint returned %d entries for %d paths", len(es), len(req.Paths))
		}
		b := &batcher[*wEntry]{send: func(b []*wEntry) error { return items(&wEntries{Entries: b}) }}
		for _, e := range es {
			if err := b.add(toWire(e), entrySize(e)); err != nil {
				return nil, err
			}
		}
		if err := b.flush(); err != nil {
			return nil, err
		}
		return wEmpty{}, nil

	case tList:
		var req wPathExpect
		if err := unmarshalBody(f, &req); err != nil {
			return nil, err
		}
		if err := serverCheckPath(req.Path, true); err != nil {
			return nil, err
		}
		pes, err := s.ep.List(ctx, req.Path)
		if err != nil {
			return nil, err
		}
		b := &batcher[wPathEntry]{send: func(b []wPathEntry) error { return items(&wPathEntries{Entries: b}) }}
		for _, pe := range pes {
			if err := b.add(wPathEntry{Path: pe.Path, Entry: toWire(pe.Entry)}, len(pe.Path)+entrySize(pe.Entry)); err != nil {
				return nil, err
			}
		}
		if err := b.flush(); err != nil {
			return nil, err
		}
		return wEmpty{}, nil

	case tReadFile:
		var req wPathExpect
		expect, err := s.pathExpect(f, &req)
		if err != nil {
			return nil, err
		}
		rc, err := s.ep.ReadFile(ctx, req.Path, expect)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return nil, s.stream(ctx, st, func(w io.Writer) error {
			_, err := io.Copy(w, rc)
			return err
		})

	case tApply:
		var op wOp
		if err := unmarshalBody(f, &op); err != nil {
			return nil, err
		}
		if err := serverCheckPath(op.Path, false); err != nil {
			return nil, err
		}
		kind := remote.OpKind(op.Kind)
		if kind < remote.OpPut || kind > remote.OpSetMeta {
			return nil, fmt.Errorf("apply %s: unknown operation %d", state.Display(op.Path), op.Kind)
		}
		expect, err := fromWire(op.Expect)
		if err != nil {
			return nil, err
		}
		nw, err := fromWire(op.New)
		if err != nil {
			return nil, err
		}
		var content io.Reader
		switch {
		case op.Stage > 2:
			return nil, fmt.Errorf("%w: apply with stage %d", ErrProtocol, op.Stage)
		case op.Stage == 1 && (kind != remote.OpPut || !op.Delta || op.Inline):
			return nil, fmt.Errorf("%w: a stage that is not a streamed delta put", ErrProtocol)
		case op.Stage == 2 && (kind != remote.OpPut || op.Delta || op.Inline):
			return nil, fmt.Errorf("%w: an install of a staged file that is not a plain put", ErrProtocol)
		case !op.Inline && len(f.Data) > 0:
			return nil, fmt.Errorf("%w: contents in an apply request not marked inline", ErrProtocol)
		case op.Inline && (kind != remote.OpPut || op.Delta):
			return nil, fmt.Errorf("%w: inline contents in a %d operation", ErrProtocol, op.Kind)
		case op.Inline:
			content = bytes.NewReader(f.Data)
		case kind == remote.OpPut:
			content = &dataReader{ctx: ctx, c: c, st: st}
		}
		e, err := s.ep.Apply(ctx, remote.Op{Kind: kind, Path: op.Path, Expect: expect, New: nw, Delta: op.Delta,
			Stage: op.Stage == 1, FromStage: op.Stage == 2}, content)
		if op.Inline {
			f.release() // Apply has read the contents
		}
		if err != nil {
			return nil, err
		}
		return &wApplyReply{Entry: toWire(e)}, nil

	case tPutBatch:
		var req wPutBatch
		if err := unmarshalBody(f, &req); err != nil {
			return nil, err
		}
		if len(req.Ops) == 0 || len(req.Ops) > maxPutBatch {
			return nil, fmt.Errorf("%w: a put-batch of %d files (1 to %d allowed)", ErrProtocol, len(req.Ops), maxPutBatch)
		}
		ops := make([]remote.Op, len(req.Ops))
		contents := make([][]byte, len(req.Ops))
		data := f.Data
		for i, w := range req.Ops {
			if err := serverCheckPath(w.Path, false); err != nil {
				return nil, err
			}
			if remote.OpKind(w.Kind) != remote.OpPut || w.Delta {
				return nil, fmt.Errorf("%w: a put-batch holds only whole-file puts", ErrProtocol)
			}
			expect, err := fromWire(w.Expect)
			if err != nil {
				return nil, err
			}
			nw, err := fromWire(w.New)
			if err != nil {
				return nil, err
			}
			if nw == nil || nw.Kind != state.File || nw.Size > int64(len(data)) {
				return nil, fmt.Errorf("%w: put-batch contents shorter than its files", ErrProtocol)
			}
			contents[i], data = data[:nw.Size], data[nw.Size:]
			ops[i] = remote.Op{Kind: remote.OpPut, Path: w.Path, Expect: expect, New: nw}
		}
		if len(data) != 0 {
			return nil, fmt.Errorf("%w: put-batch contents longer than its files", ErrProtocol)
		}
		var ents []*state.Entry
		var errs []error
		if bp, ok := s.ep.(remote.BatchPutter); ok {
			var err error
			if ents, errs, err = bp.PutBatch(ctx, ops, contents); err != nil {
				return nil, err
			}
		} else {
			ents, errs = make([]*state.Entry, len(ops)), make([]error, len(ops))
			for i := range ops {
				ents[i], errs[i] = s.ep.Apply(ctx, ops[i], bytes.NewReader(contents[i]))
			}
		}
		// The files are written: their contents, slices of the frame's
		// data, are no longer used.
		f.release()
		res := make([]wPutResult, len(ops))
		for i := range ops {
			if errs[i] != nil {
				res[i].Err = encodeError(errs[i])
			} else {
				res[i].Entry = toWire(ents[i])
			}
		}
		return &wPutBatchReply{Results: res}, nil

	case tCommit:
		var req wRecords
		if err := unmarshalBody(f, &req); err != nil {
			return nil, err
		}
		recs := make([]remote.Record, len(req.Records))
		for i, r := range req.Records {
			if err := serverCheckPath(r.Path, false); err != nil {
				return nil, err
			}
			e, err := fromWire(r.Entry)
			if err != nil {
				return nil, err
			}
			recs[i] = remote.Record{Path: r.Path, Entry: e}
		}
		if err := s.ep.Commit(ctx, recs); err != nil {
			return nil, err
		}
		return wEmpty{}, nil

	case tClose:
		if err := s.ep.Close(); err != nil {
			return nil, err
		}
		return wEmpty{}, nil

	case tSignature:
		var req wPathExpect
		expect, err := s.pathExpect(f, &req)
		if err != nil {
			return nil, err
		}
		signer, ok := s.ep.(delta.Signer)
		if !ok {
			return nil, fmt.Errorf("signature of %s: the remote endpoint cannot compute signatures", state.Display(req.Path))
		}
		sig, err := signer.Signature(ctx, req.Path, expect)
		if err != nil {
			return nil, err
		}
		return nil, s.stream(ctx, st, sig.Encode)

	case tReadDelta:
		var req wPathExpect
		expect, err := s.pathExpect(f, &req)
		if err != nil {
			return nil, err
		}
		confirm := delta.Confirm(req.Confirm)
		if !confirm.Valid() {
			return nil, fmt.Errorf("%w: delta of %s: unknown confirm mode %d", ErrProtocol, state.Display(req.Path), req.Confirm)
		}
		r := &dataReader{ctx: ctx, c: c, st: st}
		sig, err := delta.DecodeSig(r, req.BasisSize)
		if err != nil {
			return nil, fmt.Errorf("delta of %s: the client's signature: %w", state.Display(req.Path), err)
		}
		var one [1]byte
		if n, err := io.ReadFull(r, one[:]); n > 0 || err != io.EOF {
			return nil, fmt.Errorf("delta of %s: the client's signature: %w: trailing data", state.Display(req.Path), delta.ErrCorrupt)
		}
		rc, err := s.ep.ReadFile(ctx, req.Path, expect)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return nil, s.stream(ctx, st, func(w io.Writer) error { return delta.WriteDelta(w, sig, rc, confirm) })
	}
	return nil, fmt.Errorf("%w: unknown request %s", ErrProtocol, f.Type)
}

// pathExpect decodes a request naming a path and its expected entry.
func (s *server) pathExpect(f *frame, req *wPathExpect) (*state.Entry, error) {
	if err := unmarshalBody(f, req); err != nil {
		return nil, err
	}
	if err := serverCheckPath(req.Path, false); err != nil {
		return nil, err
	}
	return fromWire(req.Expect)
}

// stream answers a request with an empty reply, then the bytes write
// produces as a data stream, ended with write's error if it fails.
func (s *server) stream(ctx context.Context, st *stream, write func(io.Writer) error) error {
	if err := s.c.send(tReply, st.id, wEmpty{}, nil); err != nil {
		return err
	}
	w := newDataWriter(ctx, s.c, st)
	err := write(w)
	if ctx.Err() != nil {
		// The client gave up: it reads nothing more.
		return nil
	}
	// A broken connection makes the end fail too; nothing more to do.
	_ = w.end(err)
	return nil
}
