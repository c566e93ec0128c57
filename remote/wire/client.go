package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// Client limits.
const (
	// maxInflight is how many requests a client has outstanding at once;
	// more calls wait for a slot. A put holds its slot until the file is
	// flushed and renamed on the far side, and the far side flushes many
	// files at once: with 64 slots a first sync of 20,000 small files
	// spent most of its time waiting for flushes of 64 files, with 200 it
	// took a quarter less time; 1,024 keeps up with the engine's
	// workers.
	maxInflight = 1024
	// maxBigInflight bounds the requests among those that move more than
	// one chunk (large files), so that what the server buffers (a window
	// of chunks per stream) stays within tens of MiB.
	maxBigInflight = 16
	// closeTimeout bounds how long Close waits for the server to close its
	// endpoint.
	closeTimeout = 30 * time.Second
)

// Option configures a client.
type Option func(*options)

type options struct {
	compress bool
	version  string
	name     string
}

// WithCompression asks for zstd compression of the frames both sides send.
func WithCompression(on bool) Option { return func(o *options) { o.compress = on } }

// WithVersion sets the program version the client announces (for the
// server's logs).
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithName names the remote, as the user spelled it (its root, say), in the
// messages of connection failures after the handshake and of the fatal
// errors the remote reports: a run with several remotes, or one started by
// cron, must say which link went down or which host's archive is damaged.
// The handshake's errors are left for the caller to name.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// ErrClosed is returned by calls on a client after Close.
var ErrClosed = errors.New("the connection to the remote is closed")

// connError is a failure of the connection itself: the remote died, broke
// the protocol or was closed. It stops the whole run (remote.ErrFatal).
type connError struct {
	err  error
	name string // the remote's name (WithName), or ""
}

func (e *connError) Error() string {
	if e.name == "" {
		return e.err.Error()
	}
	return e.name + ": " + e.err.Error()
}
func (e *connError) Unwrap() []error { return []error{e.err, remote.ErrFatal} }

// Client is a remote.Endpoint reached over a connection to Serve. Its
// methods may be called from many goroutines at once: their requests are
// pipelined on the one connection.
type Client struct {
	rwc  io.ReadWriteCloser
	c    *conn
	opts options

	ready chan struct{} // closed when the handshake is over
	hsErr error

	sem    chan struct{}
	bigSem chan struct{}
	// puts gathers small puts into put-batch requests.
	puts     *remote.Gatherer
	putsOnce sync.Once
	nextID   atomic.Uint64

	closeOnce  sync.Once
	closeErr   error
	readerDone chan struct{}
}

var (
	_ remote.Endpoint = (*Client)(nil)
	_ delta.Signer    = (*Client)(nil)
)

// NewClient returns an Endpoint speaking the protocol over rwc, typically
// the standard input and output of `concord serve` on the remote. The
// handshake starts at once; its outcome is returned by the first call (or
// by Handshake): a *VersionError when the remote speaks another protocol
// version, a *NoiseError when something printed to the remote's standard
// output first, ErrNoPeer when the remote closed the connection at once.
// The returned value is a *Client. Close closes rwc.
func NewClient(rwc io.ReadWriteCloser, opts ...Option) remote.Endpoint {
	return newClient(rwc, opts...)
}

// Connect is NewClient followed by Handshake: it returns the client once
// the handshake has succeeded, or the handshake's error after closing rwc.
func Connect(ctx context.Context, rwc io.ReadWriteCloser, opts ...Option) (*Client, error) {
	cl := newClient(rwc, opts...)
	if err := cl.Handshake(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

func newClient(rwc io.ReadWriteCloser, opts ...Option) *Client {
	cl := &Client{
		rwc:        rwc,
		c:          newConn(rwc, rwc),
		ready:      make(chan struct{}),
		sem:        make(chan struct{}, maxInflight),
		bigSem:     make(chan struct{}, maxBigInflight),
		readerDone: make(chan struct{}),
	}
	for _, o := range opts {
		o(&cl.opts)
	}
	// A write that fails means the link is gone, as a failed read does.
	cl.c.wrapWrite = cl.lost
	cl.c.peer = cl.opts.name
	go cl.handshake()
	return cl
}

// Handshake waits for the end of the handshake and returns its error.
func (cl *Client) Handshake(ctx context.Context) error {
	select {
	case <-cl.ready:
		return cl.hsErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (cl *Client) handshake() {
	defer close(cl.ready)
	setup, err := encodeFrame(&frame{Type: tSetup, Body: mustBody(&wSetup{Compress: cl.opts.compress, Version: cl.opts.version})}, false)
	if err != nil {
		cl.hsErr = err
		close(cl.readerDone)
		return
	}
	werr := make(chan error, 1)
	go func() {
		_, err := cl.rwc.Write(append(hello(), setup...))
		werr <- err
	}()
	if err := readServerHello(cl.c.br); err != nil {
		// Closing unblocks the write if the peer reads nothing.
		cl.rwc.Close()
		<-werr
		cl.hsErr = &connError{err: err}
		cl.c.fail(cl.hsErr)
		close(cl.readerDone)
		return
	}
	if err := <-werr; err != nil {
		cl.hsErr = &connError{err: fmt.Errorf("write the handshake to the remote: %w", err)}
		cl.c.fail(cl.hsErr)
		close(cl.readerDone)
		return
	}
	cl.c.compress = cl.opts.compress
	go cl.c.writeLoop()
	go cl.readLoop()
}

func mustBody(v any) []byte {
	b, err := marshalBody(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (cl *Client) readLoop() {
	defer close(cl.readerDone)
	for {
		f, err := readFrame(cl.c.br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the remote closed the connection unexpectedly")
			} else if errors.Is(err, ErrProtocol) {
				err = fmt.Errorf("the remote broke the protocol, connection closed: %w", err)
			} else {
				err = fmt.Errorf("read from the remote: %w", err)
			}
			cl.c.fail(cl.lost(err))
			return
		}
		switch f.Type {
		case tData, tEnd, tItems, tCredit, tProgress, tReply, tError:
		default:
			cl.broken(fmt.Errorf("%w: unexpected %s frame", ErrProtocol, f.Type))
			return
		}
		if err := cl.c.deliver(f); err != nil {
			cl.broken(err)
			return
		}
	}
}

// broken fails the connection with a protocol error found while handling a
// reply, and returns it.
func (cl *Client) broken(err error) error {
	cl.c.fail(cl.lost(fmt.Errorf("the remote broke the protocol, connection closed: %w", err)))
	return cl.c.err
}

// lost wraps a failure of the connection after the handshake, naming the
// remote.
func (cl *Client) lost(err error) error {
	return &connError{err: err, name: cl.opts.name}
}

// start sends a request and returns its stream.
func (cl *Client) start(ctx context.Context, t msgType, body any) (*stream, error) {
	return cl.startData(ctx, t, body, nil)
}

// startData sends a request carrying data in its frame and returns its
// stream.
func (cl *Client) startData(ctx context.Context, t msgType, body any, data []byte) (*stream, error) {
	if err := cl.Handshake(ctx); err != nil {
		return nil, err
	}
	select {
	case cl.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-cl.c.done:
		return nil, cl.c.err
	}
	st := newStream(cl.nextID.Add(1))
	cl.c.mu.Lock()
	cl.c.streams[st.id] = st
	cl.c.mu.Unlock()
	if err := cl.c.send(t, st.id, body, data); err != nil {
		cl.finish(st, true)
		return nil, err
	}
	return st, nil
}

// big takes one of the slots for requests moving more than a chunk (size
// bytes), if it does; release gives it back.
func (cl *Client) big(ctx context.Context, size int64) (release func(), err error) {
	if size <= ChunkSize {
		return func() {}, nil
	}
	select {
	case cl.bigSem <- struct{}{}:
		return func() { <-cl.bigSem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-cl.c.done:
		return nil, cl.c.err
	}
}

// finish forgets a request; one not complete (given up before its reply or
// the end of its stream) is cancelled on the server.
func (cl *Client) finish(st *stream, complete bool) {
	cl.c.remove(st)
	<-cl.sem
	if !complete {
		select {
		case <-cl.c.done:
		default:
			cl.c.send(tCancel, st.id, nil, nil)
		}
	}
}

// final interprets a request's last frame: its reply, decoded into reply
// (if not nil), or its error.
func (cl *Client) final(f *frame, reply any) error {
	switch f.Type {
	case tReply:
		if reply == nil {
			return nil
		}
		if err := unmarshalBody(f, reply); err != nil {
			return cl.broken(err)
		}
		return nil
	case tError:
		if err := cl.c.peerError(f); !errors.As(err, new(*PeerError)) {
			return cl.broken(err)
		} else {
			return err
		}
	}
	return cl.broken(fmt.Errorf("%w: unexpected %s frame", ErrProtocol, f.Type))
}

// roundTrip sends a request and decodes its single reply.
func (cl *Client) roundTrip(ctx context.Context, t msgType, body, reply any) error {
	st, err := cl.start(ctx, t, body)
	if err != nil {
		return err
	}
	f, err := cl.c.recv(ctx, st)
	cl.finish(st, err == nil)
	if err != nil {
		return err
	}
	return cl.final(f, reply)
}

// items runs a request whose answer is a series of item batches then a
// reply: each batch is decoded into a fresh value from newBatch and given
// to batch. progress, if not nil, is called when the server reports scan
// progress.
func (cl *Client) items(ctx context.Context, t msgType, body any, newBatch func() any, batch func(any) error, reply any, progress func(*stream)) error {
	st, err := cl.start(ctx, t, body)
	if err != nil {
		return err
	}
	complete := false
	defer func() { cl.finish(st, complete) }()
	var wake chan struct{}
	if progress != nil {
		wake = st.progressc
	}
	for {
		f, woke, err := cl.c.recvOr(ctx, st, wake)
		if err != nil {
			return err
		}
		if woke {
			progress(st)
			continue
		}
		if f.Type != tItems {
			complete = true
			// Progress that came before the end and was not shown yet
			// (the end frame won the race): show it now.
			select {
			case <-wake:
				progress(st)
			default:
			}
			return cl.final(f, reply)
		}
		v := newBatch()
		if err := unmarshalBody(f, v); err != nil {
			return cl.broken(err)
		}
		if err := cl.c.grant(st); err != nil {
			return err
		}
		if err := batch(v); err != nil {
			return err
		}
	}
}

// checkPath refuses a path from the server that could leave the root, or
// that names a concord temporary file (see validPath).
func checkPath(what, p string) error {
	if err := validPath(p); err != nil {
		return fmt.Errorf("the remote sent an unsafe path in its %s reply, refused: %w: %w", what, err, remote.ErrUnsafePath)
	}
	return nil
}

// validPath checks a path a peer sent: state.ValidatePath, and no component
// may be one of concord's temporary file names (scan.IsTemp). No scan
// reports such a name, so no honest peer sends one; acting on one could
// replace or delete another run's temporary file, or create a file that is
// never synchronized. A user's name that merely starts the same way
// (".concord-tmp-notes") is an ordinary name and passes.
func validPath(p string) error {
	if err := state.ValidatePath(p); err != nil {
		return err
	}
	for rest := p; rest != ""; {
		c := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			c, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if scan.IsTemp(c) {
			return fmt.Errorf("path %s names a concord temporary file", state.Display(p))
		}
	}
	return nil
}

// Hello implements remote.Endpoint.
func (cl *Client) Hello(ctx context.Context) (remote.Info, error) {
	var r wInfo
	if err := cl.roundTrip(ctx, tHello, wEmpty{}, &r); err != nil {
		return remote.Info{}, err
	}
	return remote.Info{ReplicaID: r.ReplicaID, Host: r.Host, Root: r.Root, Protocol: r.Protocol, Version: r.Version}, nil
}

// Open implements remote.Endpoint.
func (cl *Client) Open(ctx context.Context, req remote.OpenRequest) (remote.OpenReply, error) {
	var r wOpenReply
	err := cl.roundTrip(ctx, tOpen, &wOpenRequest{PeerID: req.PeerID, PeerRoot: req.PeerRoot, Ignore: req.Ignore,
		DryRun: req.DryRun, BackupDir: req.BackupDir, MaxBackups: req.MaxBackups}, &r)
	if err != nil {
		return remote.OpenReply{}, err
	}
	if len(r.Digest) != 32 {
		return remote.OpenReply{}, cl.broken(fmt.Errorf("%w: archive digest of %d bytes", ErrProtocol, len(r.Digest)))
	}
	rep := remote.OpenReply{PairID: r.PairID, Entries: r.Entries, Path: r.Path}
	copy(rep.Digest[:], r.Digest)
	return rep, nil
}

// Scan implements remote.Endpoint. Progress reports from the server are
// delivered to progress from the calling goroutine; when they come faster
// than progress handles them, only the latest is delivered.
func (cl *Client) Scan(ctx context.Context, req remote.ScanRequest, progress func(remote.ScanProgress)) (remote.ScanReply, error) {
	var rep remote.ScanReply
	onProgress := func(st *stream) {
		if p := st.progress.Load(); p != nil && progress != nil {
			progress(remote.ScanProgress{Entries: p.Entries, Hashed: p.Hashed, HashedBytes: p.HashedBytes})
		}
	}
	// change checks and decodes one change or announcement.
	change := func(c wChange) (remote.Change, error) {
		if err := checkPath("scan", c.Path); err != nil {
			return remote.Change{}, err
		}
		old, err := fromWire(c.Old)
		if err != nil {
			return remote.Change{}, cl.broken(err)
		}
		nw, err := fromWire(c.New)
		if err != nil {
			return remote.Change{}, cl.broken(err)
		}
		return remote.Change{Path: c.Path, Old: old, New: nw, Below: c.Below}, nil
	}
	batch := func(v any) error {
		b := v.(*wScanItems)
		for _, c := range b.Changes {
			ch, err := change(c)
			if err != nil {
				return err
			}
			rep.Changes = append(rep.Changes, ch)
		}
		for _, p := range b.Skipped {
			if err := checkPath("scan", p.Path); err != nil {
				return err
			}
			rep.Skipped = append(rep.Skipped, remote.Problem{Path: p.Path, Err: p.Err, Warning: p.Warning})
		}
		for _, c := range b.Hashing {
			h, err := change(c)
			if err != nil {
				return err
			}
			if h.Old == nil || h.New == nil || h.Old.Kind != state.File || h.New.Kind != state.File {
				return cl.broken(fmt.Errorf("%w: scan announced hashing %s, which is not a file", ErrProtocol, state.Display(h.Path)))
			}
			if req.Hashing != nil {
				req.Hashing(h.Path, h.Old, h.New)
			}
		}
		return nil
	}
	var r wScanReply
	err := cl.items(ctx, tScan, wEmpty{}, func() any { return new(wScanItems) }, batch, &r, onProgress)
	if err != nil {
		return remote.ScanReply{}, err
	}
	rep.Entries, rep.Hashed, rep.HashedBytes = r.Entries, r.Hashed, r.HashedBytes
	return rep, nil
}

// ArchiveList implements remote.Endpoint. An error from fn stops the
// listing and is returned as it is.
func (cl *Client) ArchiveList(ctx context.Context, fn func(path string, e *state.Entry) error) error {
	return cl.items(ctx, tArchiveList, wEmpty{}, func() any { return new(wPathEntries) }, func(v any) error {
		for _, pe := range v.(*wPathEntries).Entries {
			if err := checkPath("archive list", pe.Path); err != nil {
				return err
			}
			e, err := fromWire(pe.Entry)
			if err != nil {
				return cl.broken(err)
			}
			if err := fn(pe.Path, e); err != nil {
				return err
			}
		}
		return nil
	}, nil, nil)
}

// splitPaths cuts paths into batches that fit a frame.
func splitPaths[T any](items []T, size func(T) int) [][]T {
	var out [][]T
	start, bytes := 0, 0
	for i, it := range items {
		s := size(it)
		if i > start && (i-start >= maxBatchItems || bytes+s > maxBatchBytes) {
			out = append(out, items[start:i])
			start, bytes = i, 0
		}
		bytes += s
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}

// Stat implements remote.Endpoint. Many paths are sent in several requests.
func (cl *Client) Stat(ctx context.Context, paths []string) ([]*state.Entry, error) {
	out := make([]*state.Entry, 0, len(paths))
	for _, batch := range splitPaths(paths, func(p string) int { return len(p) + 16 }) {
		n := len(out)
		err := cl.items(ctx, tStat, &wPaths{Paths: batch}, func() any { return new(wEntries) }, func(v any) error {
			for _, we := range v.(*wEntries).Entries {
				e, err := fromWire(we)
				if err != nil {
					return cl.broken(err)
				}
				if len(out)-n >= len(batch) {
					return cl.broken(fmt.Errorf("%w: more stat results than the %d paths asked", ErrProtocol, len(batch)))
				}
				out = append(out, e)
			}
			return nil
		}, nil, nil)
		if err != nil {
			return nil, err
		}
		if len(out)-n != len(batch) {
			return nil, cl.broken(fmt.Errorf("%w: %d stat results for %d paths", ErrProtocol, len(out)-n, len(batch)))
		}
	}
	return out, nil
}

// List implements remote.Endpoint. Every path returned must be p or lie
// below it.
func (cl *Client) List(ctx context.Context, p string) ([]remote.PathEntry, error) {
	var out []remote.PathEntry
	err := cl.items(ctx, tList, &wPathExpect{Path: p}, func() any { return new(wPathEntries) }, func(v any) error {
		for _, pe := range v.(*wPathEntries).Entries {
			if err := checkPath("list", pe.Path); err != nil && pe.Path != "" {
				return err
			}
			if len(out) == 0 && pe.Path != p || len(out) > 0 && !state.IsBelow(pe.Path, p) {
				return fmt.Errorf("the remote listed %s under %s, refused: %w", state.Display(pe.Path), state.Display(p), remote.ErrUnsafePath)
			}
			e, err := fromWire(pe.Entry)
			if err != nil {
				return cl.broken(err)
			}
			out = append(out, remote.PathEntry{Path: pe.Path, Entry: e})
		}
		return nil
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// openStream sends a request answered by a reply, then a byte stream.
func (cl *Client) openStream(ctx context.Context, t msgType, body any, sendFirst func(*dataWriter) error) (*stream, error) {
	st, err := cl.start(ctx, t, body)
	if err != nil {
		return nil, err
	}
	var f *frame
	if sendFirst != nil {
		w := newDataWriter(ctx, cl.c, st)
		w.watch = true
		err := sendFirst(w)
		if err == nil {
			err = w.end(nil)
		} else if !errors.Is(err, errEarlyReply) {
			w.end(err)
		}
		f = w.early
		if err != nil && f == nil {
			cl.finish(st, false)
			return nil, err
		}
	}
	if f == nil {
		if f, err = cl.c.recv(ctx, st); err != nil {
			cl.finish(st, false)
			return nil, err
		}
	}
	if err := cl.final(f, nil); err != nil {
		cl.finish(st, true)
		return nil, err
	}
	return st, nil
}

// ReadFile implements remote.Endpoint. The file arrives in chunks as the
// reader is read, ChunkSize at a time with a few chunks in flight; the
// reader fails with an error wrapping remote.ErrChanged if the remote
// sends more or fewer bytes than expect.Size. Close it to give up early.
func (cl *Client) ReadFile(ctx context.Context, p string, expect *state.Entry) (io.ReadCloser, error) {
	size := int64(-1)
	if expect != nil {
		size = expect.Size
	}
	release, err := cl.big(ctx, size)
	if err != nil {
		return nil, err
	}
	st, err := cl.openStream(ctx, tReadFile, &wPathExpect{Path: p, Expect: toWire(expect)}, nil)
	if err != nil {
		release()
		return nil, err
	}
	return &streamReader{dataReader: dataReader{ctx: ctx, c: cl.c, st: st}, cl: cl, path: p, size: size, release: release}, nil
}

// streamReader is a byte stream from the server, as ReadFile returns it.
type streamReader struct {
	dataReader
	cl       *Client
	path     string
	size     int64 // -1: unknown
	once     sync.Once
	complete bool
	release  func() // gives back the large-request slot, if any
}

func (r *streamReader) Read(p []byte) (int, error) {
	n, err := r.dataReader.Read(p)
	if r.size >= 0 && r.n > r.size {
		r.err = fmt.Errorf("read %s: the remote sent more than the %d bytes the scan saw: %w", state.Display(r.path), r.size, remote.ErrChanged)
		return 0, r.err
	}
	if err != nil {
		var pe *PeerError
		if err == io.EOF || errors.As(err, &pe) {
			r.complete = true
		}
		if err == io.EOF && r.size >= 0 && r.n < r.size {
			r.err = fmt.Errorf("read %s: the remote sent %d bytes, the scan saw %d: %w", state.Display(r.path), r.n, r.size, remote.ErrChanged)
			return n, r.err
		}
	}
	return n, err
}

// Close ends the stream, cancelling it on the server if it was not read
// to its end.
func (r *streamReader) Close() error {
	r.once.Do(func() {
		r.cl.finish(r.st, r.complete)
		if r.release != nil {
			r.release()
		}
	})
	return nil
}

// Apply implements remote.Endpoint. For an OpPut, content is read in
// chunks and streamed to the server as the server consumes it; an error
// reading content is passed to the server's endpoint (which abandons the
// file) and returned.
func (cl *Client) Apply(ctx context.Context, op remote.Op, content io.Reader) (*state.Entry, error) {
	if op.Kind == remote.OpPut && op.New != nil && !op.FromStage {
		release, err := cl.big(ctx, op.New.Size)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	if op.Kind == remote.OpPut && !op.Delta && !op.FromStage && op.New != nil && op.New.Size <= inlineMax {
		return cl.applyInline(ctx, op, content)
	}
	var stage uint8
	switch {
	case op.Stage:
		stage = 1
	case op.FromStage:
		stage = 2
	}
	st, err := cl.start(ctx, tApply, &wOp{Kind: uint8(op.Kind), Path: op.Path, Expect: toWire(op.Expect), New: toWire(op.New), Delta: op.Delta, Stage: stage})
	if err != nil {
		return nil, err
	}
	complete := false
	defer func() { cl.finish(st, complete) }()
	var early *frame
	var contentErr error
	if op.Kind == remote.OpPut {
		if content == nil {
			content = bytes.NewReader(nil)
		}
		buf := getChunk()
		defer putChunk(buf)
		// A delta arrives in flushes of its encoder, each standing for
		// megabytes the server rebuilds: send each as it comes rather than
		// waiting to fill a chunk, which a delta may take a whole file to do.
		read := func() (int, error) { return io.ReadFull(content, buf) }
		if op.Delta {
			read = func() (int, error) {
				n, err := content.Read(buf)
				if err == io.EOF && n > 0 {
					err = nil
				}
				return n, err
			}
		}
		for {
			n, rerr := read()
			if n > 0 {
				f, err := cl.c.waitCredit(ctx, st, true)
				if errors.Is(err, errEarlyReply) {
					early = f
					break
				}
				if err != nil {
					return nil, err
				}
				if err := cl.c.send(tData, st.id, nil, buf[:n]); err != nil {
					return nil, err
				}
			}
			eof := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
			if eof {
				rerr = nil
			}
			if rerr != nil {
				contentErr = fmt.Errorf("read the contents for %s: %w", state.Display(op.Path), rerr)
			}
			if rerr != nil || eof {
				var body any
				if contentErr != nil {
					body = encodeError(contentErr)
				}
				if err := cl.c.send(tEnd, st.id, body, nil); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	f := early
	if f == nil {
		if f, err = cl.c.recv(ctx, st); err != nil {
			return nil, err
		}
	}
	complete = true
	var r wApplyReply
	if err := cl.final(f, &r); err != nil {
		if contentErr != nil {
			return nil, contentErr
		}
		return nil, err
	}
	if contentErr != nil {
		return nil, cl.broken(fmt.Errorf("%w: the remote installed %s from contents that failed", ErrProtocol, state.Display(op.Path)))
	}
	e, err := fromWire(r.Entry)
	if err != nil {
		return nil, cl.broken(err)
	}
	return e, nil
}

// inlineMax is the largest file a put carries inside its request frame.
// Most files of a source tree are small; sending each as request, data and
// end frames, with a credit frame back, cost more than its bytes.
const inlineMax = 64 << 10

// applyInline puts a small file. Its contents are read first (a source
// that fails, or turns out another size than the scan saw, sends nothing),
// then the put joins others made at about the same time in one put-batch
// request: the far side writes them all, flushes them to disk once and
// answers once.
func (cl *Client) applyInline(ctx context.Context, op remote.Op, content io.Reader) (*state.Entry, error) {
	buf := getBuf(int(op.New.Size) + 1)
	data, err := remote.ReadWhole(content, buf, op.Path, op.New.Size)
	if err != nil {
		putBuf(buf)
		return nil, err
	}
	e, err := cl.gatherer().Put(ctx, op, data)
	if ctx.Err() == nil {
		// Put returned with its batch's result, so the batch is sent and
		// done with the contents. (Given up on, it may still be sending.)
		putBuf(buf)
	}
	return e, err
}

// MaxAsyncPut is the largest file PutAsync takes: one sent inline.
func (cl *Client) MaxAsyncPut() int64 { return inlineMax }

// PutAsync puts a small file in the next put-batch request and reports its
// result to done (remote.AsyncPutter).
func (cl *Client) PutAsync(ctx context.Context, op remote.Op, content []byte, done func(*state.Entry, error)) {
	if op.Kind != remote.OpPut || op.Delta || op.Stage || op.FromStage || op.New == nil || op.New.Size != int64(len(content)) || op.New.Size > inlineMax {
		go done(nil, fmt.Errorf("put %s: not a whole small file (%d bytes)", state.Display(op.Path), len(content)))
		return
	}
	cl.gatherer().PutAsync(ctx, op, content, done)
}

func (cl *Client) gatherer() *remote.Gatherer {
	cl.putsOnce.Do(func() {
		cl.puts = &remote.Gatherer{Send: cl.putBatch, MaxFiles: maxPutBatch, MaxBytes: maxPutBatchData, Linger: putLinger}
	})
	return cl.puts
}

// Put batches: how many small files, and how many bytes of them, one
// put-batch request carries at most, and how long a batch waits for more
// puts to join it.
const (
	maxPutBatch     = 64
	maxPutBatchData = 192 << 10 // within ChunkSize, the largest data a frame may carry
	putLinger       = time.Millisecond
)

// putBatch sends one put-batch request and returns its results.
func (cl *Client) putBatch(ops []remote.Op, contents [][]byte) ([]*state.Entry, []error, error) {
	req := &wPutBatch{Ops: make([]wOp, len(ops))}
	size := 0
	for _, c := range contents {
		size += len(c)
	}
	data := getBuf(size)
	for i, op := range ops {
		req.Ops[i] = wOp{Kind: uint8(op.Kind), Path: op.Path, Expect: toWire(op.Expect), New: toWire(op.New), Inline: true}
		data = append(data, contents[i]...)
	}
	ctx := context.Background() // each caller gives up on its own
	st, err := cl.startData(ctx, tPutBatch, req, data)
	putBuf(data) // the frame holds a copy
	if err != nil {
		return nil, nil, err
	}
	f, err := cl.c.recv(ctx, st)
	if err != nil {
		cl.finish(st, false)
		return nil, nil, err
	}
	cl.finish(st, true)
	var r wPutBatchReply
	if err := cl.final(f, &r); err != nil {
		return nil, nil, err
	}
	if len(r.Results) != len(ops) {
		return nil, nil, cl.broken(fmt.Errorf("%w: %d results for a batch of %d files", ErrProtocol, len(r.Results), len(ops)))
	}
	ents := make([]*state.Entry, len(ops))
	errs := make([]error, len(ops))
	for i, res := range r.Results {
		if res.Err != nil {
			errs[i] = &PeerError{Msg: res.Err.Msg, Class: res.Err.Class}
			continue
		}
		e, err := fromWire(res.Entry)
		if err == nil && e == nil {
			err = fmt.Errorf("%w: no entry for a file put", ErrProtocol)
		}
		if err != nil {
			return nil, nil, cl.broken(err)
		}
		ents[i] = e
	}
	return ents, errs, nil
}

// Commit implements remote.Endpoint. Many records are sent in several
// requests, each committed by the server as it arrives.
func (cl *Client) Commit(ctx context.Context, recs []remote.Record) error {
	for _, batch := range splitPaths(recs, func(r remote.Record) int { return len(r.Path) + 96 + recTarget(r) }) {
		w := &wRecords{Records: make([]wRecord, len(batch))}
		for i, r := range batch {
			w.Records[i] = wRecord{Path: r.Path, Entry: toWire(r.Entry)}
		}
		if err := cl.roundTrip(ctx, tCommit, w, nil); err != nil {
			return err
		}
	}
	return nil
}

func recTarget(r remote.Record) int {
	if r.Entry == nil {
		return 0
	}
	return len(r.Entry.Target)
}

// Close asks the server to close its endpoint (releasing its lock), then
// closes the connection. It is safe to call twice.
func (cl *Client) Close() error {
	cl.closeOnce.Do(func() {
		select {
		case <-cl.ready:
		default:
			// The handshake is still waiting for the remote.
			cl.rwc.Close()
			<-cl.ready
		}
		if cl.hsErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			err := cl.roundTrip(ctx, tClose, wEmpty{}, nil)
			cancel()
			if err != nil && !errors.Is(err, ErrClosed) {
				cl.closeErr = err
			}
		}
		cl.c.fail(&connError{err: ErrClosed})
		if err := cl.rwc.Close(); err != nil && cl.closeErr == nil && cl.hsErr == nil {
			cl.closeErr = fmt.Errorf("close the connection to the remote: %w", err)
		}
		<-cl.readerDone
		if cl.hsErr == nil {
			<-cl.c.writerDone
		}
	})
	return cl.closeErr
}

// Signature asks the server for the signature of the file at path, which
// must match expect; the server's endpoint must implement delta.Signer.
// With it the engine computes a delta locally and sends it with an OpPut
// whose Delta is set.
func (cl *Client) Signature(ctx context.Context, path string, expect *state.Entry) (*delta.Sig, error) {
	if expect == nil || expect.Kind != state.File {
		return nil, fmt.Errorf("signature of %s: the destination holds no file to compare with", state.Display(path))
	}
	st, err := cl.openStream(ctx, tSignature, &wPathExpect{Path: path, Expect: toWire(expect)}, nil)
	if err != nil {
		return nil, err
	}
	r := &streamReader{dataReader: dataReader{ctx: ctx, c: cl.c, st: st}, cl: cl, path: path, size: -1}
	defer r.Close()
	sig, err := delta.DecodeSig(r, expect.Size)
	if err != nil {
		var pe *PeerError
		if errors.As(err, &pe) || errors.Is(err, remote.ErrFatal) || ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("signature of %s from the remote: %w", state.Display(path), err)
	}
	// The stream must end right after the signature.
	var one [1]byte
	if n, err := io.ReadFull(r, one[:]); n > 0 {
		return nil, fmt.Errorf("signature of %s from the remote: %w: trailing data", state.Display(path), delta.ErrCorrupt)
	} else if err != io.EOF {
		return nil, err
	}
	return sig, nil
}

// ReadDelta sends the signature of the destination's version of path (a
// local file) to the server, which reads its own file at path (matching
// expect) and streams back the encoded delta against that signature, as
// delta.ApplyStream takes it. It is the delta counterpart of ReadFile, for
// a transfer from the remote to a local file. The server confirms matches
// as c says.
func (cl *Client) ReadDelta(ctx context.Context, path string, expect *state.Entry, sig *delta.Sig, c delta.Confirm) (io.ReadCloser, error) {
	if sig == nil {
		return nil, fmt.Errorf("delta of %s: no signature", state.Display(path))
	}
	st, err := cl.openStream(ctx, tReadDelta, &wPathExpect{Path: path, Expect: toWire(expect), BasisSize: sig.Size, Confirm: uint8(c)},
		func(w *dataWriter) error { return sig.Encode(w) })
	if err != nil {
		return nil, err
	}
	return &streamReader{dataReader: dataReader{ctx: ctx, c: cl.c, st: st}, cl: cl, path: path, size: -1}, nil
}
