package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/concord-sync/concord/remote"
)

// conn is what the client and the server share: a writer goroutine that
// batches frames onto the stream, the streams' table, flow control, and
// the first error that broke the connection.
type conn struct {
	br       *bufio.Reader
	bw       *bufio.Writer
	compress bool

	out        chan []byte   // encoded frames for the writer
	quit       chan struct{} // closed to make the writer drain and stop
	writerDone chan struct{}

	done    chan struct{} // closed when the connection is broken
	errOnce sync.Once
	err     error
	// wrapWrite, if set, wraps the error of a failed write before it
	// breaks the connection (the client marks it fatal).
	wrapWrite func(error) error
	// peer names the far side in the fatal errors it reports (the
	// client's WithName), or is "".
	peer string

	mu      sync.Mutex
	streams map[uint64]*stream
}

func newConn(r io.Reader, w io.Writer) *conn {
	return &conn{
		br:         bufio.NewReaderSize(r, 64<<10),
		bw:         bufio.NewWriterSize(w, 64<<10),
		out:        make(chan []byte, 64),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
		streams:    make(map[uint64]*stream),
	}
}

// fail breaks the connection with err (the first error wins).
func (c *conn) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		close(c.done)
	})
}

// failWrite breaks the connection after a failed write.
func (c *conn) failWrite(err error) {
	err = fmt.Errorf("write to peer: %w", err)
	if c.wrapWrite != nil {
		err = c.wrapWrite(err)
	}
	c.fail(err)
}

// broken returns the error that broke the connection.
func (c *conn) broken() error {
	<-c.done
	return c.err
}

// writeLoop writes frames as they come, flushing when none is waiting.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	write := func(b []byte) bool {
		if _, err := c.bw.Write(b); err != nil {
			c.failWrite(err)
			return false
		}
		putBuf(b) // written: the frame is no one's any more
		return true
	}
	for {
		select {
		case b := <-c.out:
			if !write(b) {
				return
			}
		more:
			for {
				select {
				case b := <-c.out:
					if !write(b) {
						return
					}
				default:
					break more
				}
			}
			if err := c.bw.Flush(); err != nil {
				c.failWrite(err)
				return
			}
		case <-c.quit:
			for {
				select {
				case b := <-c.out:
					if !write(b) {
						return
					}
				default:
					if err := c.bw.Flush(); err != nil {
						c.failWrite(err)
					}
					return
				}
			}
		case <-c.done:
			return
		}
	}
}

// stopWriter makes the writer write what is queued and stop.
func (c *conn) stopWriter() {
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	<-c.writerDone
}

// send queues a frame.
func (c *conn) send(t msgType, id uint64, body any, data []byte) error {
	raw, err := marshalBody(body)
	if err != nil {
		return err
	}
	b, err := encodeFrame(&frame{Type: t, ID: id, Body: raw, Data: data}, c.compress)
	if err != nil {
		return err
	}
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return c.err
	}
}

// stream is one request's state on either side.
type stream struct {
	id uint64
	// in receives the request's stream and reply frames, in order. Flow
	// control bounds what a well-behaved peer puts there; a peer that
	// overruns it breaks the connection.
	in chan *frame
	// credit is how many stream frames this side may still send; creditc
	// is signalled when the peer grants more.
	credit  atomic.Int64
	creditc chan struct{}
	// progress holds the latest scan progress (client side); progressc is
	// signalled when it changes.
	progress  atomic.Pointer[wProgress]
	progressc chan struct{}
	// cancel cancels the handler's context (server side).
	cancel context.CancelFunc
}

func newStream(id uint64) *stream {
	st := &stream{
		id:        id,
		in:        make(chan *frame, window+4),
		creditc:   make(chan struct{}, 1),
		progressc: make(chan struct{}, 1),
	}
	st.credit.Store(window)
	return st
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// lookup returns the stream of id, or nil.
func (c *conn) lookup(id uint64) *stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

func (c *conn) remove(st *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
	}
}

// deliver hands a frame from the reader to its stream. Frames for a stream
// that is gone (finished or given up) are dropped.
func (c *conn) deliver(f *frame) error {
	st := c.lookup(f.ID)
	if st == nil {
		return nil
	}
	switch f.Type {
	case tCredit:
		var cr wCredit
		if err := unmarshalBody(f, &cr); err != nil {
			return err
		}
		if cr.N <= 0 || cr.N > window {
			return fmt.Errorf("%w: credit of %d", ErrProtocol, cr.N)
		}
		st.credit.Add(cr.N)
		notify(st.creditc)
		return nil
	case tProgress:
		var p wProgress
		if err := unmarshalBody(f, &p); err != nil {
			return err
		}
		st.progress.Store(&p)
		notify(st.progressc)
		return nil
	case tCancel:
		if st.cancel != nil {
			st.cancel()
		}
		return nil
	}
	select {
	case st.in <- f:
		return nil
	default:
		return fmt.Errorf("%w: the peer sent more than its window on request %d", ErrProtocol, f.ID)
	}
}

// recv returns the next frame of st. Frames delivered before the
// connection broke are still returned.
func (c *conn) recv(ctx context.Context, st *stream) (*frame, error) {
	f, _, err := c.recvOr(ctx, st, nil)
	return f, err
}

// recvOr is recv that also returns (nil, true, nil) when wake is signalled.
func (c *conn) recvOr(ctx context.Context, st *stream, wake chan struct{}) (*frame, bool, error) {
	select {
	case f := <-st.in:
		return f, false, nil
	default:
	}
	select {
	case f := <-st.in:
		return f, false, nil
	case <-wake:
		return nil, true, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case <-c.done:
		select {
		case f := <-st.in:
			return f, false, nil
		default:
			return nil, false, c.err
		}
	}
}

// grant lets the peer send one more stream frame on st.
func (c *conn) grant(st *stream) error {
	return c.send(tCredit, st.id, &wCredit{N: 1}, nil)
}

// errEarlyReply is returned by waitCredit when the peer answered the
// request while this side was still sending its stream.
var errEarlyReply = errors.New("peer replied before the end of the stream")

// waitCredit waits until st may send one more stream frame and takes the
// credit. If watchIn is set, a frame arriving on st.in (the peer's reply
// cutting the stream short) stops the wait: it is returned with
// errEarlyReply.
func (c *conn) waitCredit(ctx context.Context, st *stream, watchIn bool) (*frame, error) {
	in := st.in
	if !watchIn {
		in = nil
	}
	for {
		if n := st.credit.Load(); n > 0 {
			if st.credit.CompareAndSwap(n, n-1) {
				return nil, nil
			}
			continue
		}
		select {
		case <-st.creditc:
		case f := <-in:
			return f, errEarlyReply
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, c.err
		}
	}
}

// sendStream sends one stream frame (data or items) on st under flow
// control.
func (c *conn) sendStream(ctx context.Context, st *stream, t msgType, body any, data []byte) error {
	if _, err := c.waitCredit(ctx, st, false); err != nil {
		return err
	}
	return c.send(t, st.id, body, data)
}

// dataWriter turns writes into data frames on st, ChunkSize at most each,
// under flow control.
type dataWriter struct {
	ctx context.Context
	c   *conn
	st  *stream
	buf []byte
	// watch makes a reply from the peer stop the stream: it is kept in
	// early and writes fail with errEarlyReply.
	watch bool
	early *frame
}

func newDataWriter(ctx context.Context, c *conn, st *stream) *dataWriter {
	return &dataWriter{ctx: ctx, c: c, st: st, buf: getChunk()[:0]}
}

// chunks recycles the ChunkSize buffers byte streams are cut into: a
// sync of many small files starts a stream per file, and allocating (and
// zeroing) a fresh 256 KiB buffer for each cost a fifth of the client's
// CPU time in the remote first-sync benchmark. Frames copy the bytes they
// carry, so a buffer can go back once its last frame is sent.
var chunks = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// getChunk returns a buffer of ChunkSize bytes from the pool.
func getChunk() []byte { return *chunks.Get().(*[]byte) }

// putChunk returns a buffer from getChunk to the pool.
func putChunk(b []byte) {
	if cap(b) != ChunkSize {
		return
	}
	b = b[:ChunkSize]
	chunks.Put(&b)
}

func (w *dataWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *dataWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if w.early != nil {
		return errEarlyReply
	}
	f, err := w.c.waitCredit(w.ctx, w.st, w.watch)
	if err != nil {
		w.early = f
		return err
	}
	err = w.c.send(tData, w.st.id, nil, w.buf)
	w.buf = w.buf[:0]
	return err
}

// Flush sends what is buffered now, so that the reader can act on it
// before the buffer fills (delta.WriteDelta calls it).
func (w *dataWriter) Flush() error { return w.flush() }

// end flushes what is buffered and ends the stream, carrying err (nil for
// a normal end) to the reader.
func (w *dataWriter) end(err error) error {
	if w.early != nil {
		return errEarlyReply
	}
	if err == nil {
		if ferr := w.flush(); ferr != nil {
			return ferr
		}
	}
	var body any
	if err != nil {
		body = encodeError(err)
	}
	putChunk(w.buf)
	w.buf = nil
	return w.c.send(tEnd, w.st.id, body, nil)
}

// dataReader reads a byte stream arriving on st.
type dataReader struct {
	ctx context.Context
	c   *conn
	st  *stream
	cur []byte
	f   *frame // the data frame cur lies in
	err error
	n   int64 // bytes read so far
}

func (r *dataReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.f != nil {
			// Read copies out: nothing refers to the frame's data now.
			r.f.release()
			r.f = nil
		}
		if r.err != nil {
			return 0, r.err
		}
		f, err := r.c.recv(r.ctx, r.st)
		if err != nil {
			r.err = err
			continue
		}
		switch f.Type {
		case tData:
			r.cur, r.f = f.Data, f
			if err := r.c.grant(r.st); err != nil {
				r.err = err
			}
		case tEnd:
			r.err = r.c.endError(f)
		case tError:
			r.err = r.c.peerError(f)
		default:
			r.err = fmt.Errorf("%w: %s frame inside a byte stream", ErrProtocol, f.Type)
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.n += int64(n)
	return n, nil
}

// endError returns what an end frame carries: io.EOF or the sender's
// error.
func (c *conn) endError(f *frame) error {
	if noBody(f) {
		return io.EOF
	}
	return c.peerError(f)
}

// peerError decodes an error frame. A fatal error (a damaged archive, a
// lock held, a root missing on the far side) names the peer: it stops the run,
// and what it asks of the user (move an archive aside, say) is to be done
// on that host. An item's error does not: its line names the path and the
// side already.
func (c *conn) peerError(f *frame) error {
	err := decodeError(f)
	if pe, ok := err.(*PeerError); ok && c.peer != "" && errors.Is(pe, remote.ErrFatal) {
		pe.Remote = c.peer
	}
	return err
}
