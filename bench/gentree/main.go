// Command gentree writes the deterministic file trees that bench/run.sh
// times concord, Unison, rsync and cp against.
//
// Usage:
//
//	gentree tree -n FILES -dirs DIRS [-seed S] DIR
//	gentree edit -count K [-seed S] [-part 0|1] DIR
//	gentree big -size BYTES [-seed S] FILE
//	gentree poke -bytes K [-seed S] FILE
//
// tree creates DIR (which must not exist or be empty) holding FILES regular
// files of 100 B to 4 KiB of pseudo-random bytes spread over DIRS
// directories (two levels: about sqrt(DIRS) top directories, the rest below
// them). The same flags always give the same names and contents.
//
// edit appends one line to K distinct files of an existing tree, chosen by
// the seed and printed; with -part 0 on one side and -part 1 on the other
// (even and odd positions in name order) the two sides never edit the same
// file.
//
// big writes FILE with BYTES pseudo-random bytes; poke overwrites K bytes in
// the middle of FILE in place.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "tree":
		err = cmdTree(os.Args[2:])
	case "edit":
		err = cmdEdit(os.Args[2:])
	case "big":
		err = cmdBig(os.Args[2:])
	case "poke":
		err = cmdPoke(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gentree %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gentree tree|edit|big|poke [flags] PATH (see bench/README.md)")
	os.Exit(2)
}

// rng returns the generator every subcommand derives its choices from.
func rng(seed uint64) *rand.Rand {
	return rand.New(chacha(seed))
}

// chacha returns the ChaCha8 stream for seed.
func chacha(seed uint64) *rand.ChaCha8 {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(key)
}

// dirName returns directory i of a tree with dirs directories, relative to
// the root: the first top of them sit at the root, the others below one of
// those.
func dirName(i, dirs int) string {
	top := max(1, int(math.Sqrt(float64(dirs))))
	if i < top {
		return fmt.Sprintf("d%03d", i)
	}
	return fmt.Sprintf("d%03d/s%04d", i%top, i)
}

// fileName returns file j of a tree with dirs directories.
func fileName(j, dirs int) string {
	return fmt.Sprintf("%s/f%06d.dat", dirName(j%dirs, dirs), j)
}

func cmdTree(args []string) error {
	fl := flag.NewFlagSet("tree", flag.ExitOnError)
	n := fl.Int("n", 100000, "number of files")
	dirs := fl.Int("dirs", 1000, "number of directories")
	minSize := fl.Int("min", 100, "smallest file size in bytes")
	maxSize := fl.Int("max", 4096, "largest file size in bytes")
	seed := fl.Uint64("seed", 1, "generator seed")
	_ = fl.Parse(args)
	if fl.NArg() != 1 || *n < 0 || *dirs < 1 || *minSize < 0 || *maxSize < *minSize {
		return errors.New("want -n >= 0, -dirs >= 1, 0 <= -min <= -max and one DIR")
	}
	root := fl.Arg(0)
	if ents, err := os.ReadDir(root); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty; remove it first", root)
	}
	for i := range *dirs {
		if err := os.MkdirAll(filepath.Join(root, dirName(i, *dirs)), 0o755); err != nil {
			return err
		}
	}
	r := rng(*seed)
	buf := make([]byte, *maxSize)
	for j := range *n {
		size := *minSize + r.IntN(*maxSize-*minSize+1)
		fillRandom(r, buf[:size])
		if err := os.WriteFile(filepath.Join(root, fileName(j, *dirs)), buf[:size], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func fillRandom(r *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < len(b); k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
}

func cmdEdit(args []string) error {
	fl := flag.NewFlagSet("edit", flag.ExitOnError)
	count := fl.Int("count", 50, "number of files to edit")
	seed := fl.Uint64("seed", 2, "generator seed (choose a different one per side)")
	part := fl.Int("part", -1, "choose only among files whose index in name order is even (0) or odd (1); -1: all")
	_ = fl.Parse(args)
	if fl.NArg() != 1 || *count < 0 || *part < -1 || *part > 1 {
		return errors.New("want -count >= 0, -part -1, 0 or 1 and one DIR")
	}
	root := fl.Arg(0)
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(files)
	if *part >= 0 {
		kept := files[:0]
		for i, p := range files {
			if i%2 == *part {
				kept = append(kept, p)
			}
		}
		files = kept
	}
	if len(files) < *count {
		return fmt.Errorf("%s holds %d files to choose from, fewer than -count %d", root, len(files), *count)
	}
	r := rng(*seed)
	r.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, p := range files[:*count] {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, "edited with seed %d\n", *seed)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%q\n", p)
	}
	return nil
}

func cmdBig(args []string) error {
	fl := flag.NewFlagSet("big", flag.ExitOnError)
	size := fl.Int64("size", 1<<30, "file size in bytes")
	seed := fl.Uint64("seed", 3, "generator seed")
	_ = fl.Parse(args)
	if fl.NArg() != 1 || *size < 0 {
		return errors.New("want -size >= 0 and one FILE")
	}
	f, err := os.Create(fl.Arg(0))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, chacha(*seed), *size); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func cmdPoke(args []string) error {
	fl := flag.NewFlagSet("poke", flag.ExitOnError)
	n := fl.Int("bytes", 1000, "number of bytes to overwrite")
	seed := fl.Uint64("seed", 4, "generator seed")
	_ = fl.Parse(args)
	if fl.NArg() != 1 || *n < 0 {
		return errors.New("want -bytes >= 0 and one FILE")
	}
	f, err := os.OpenFile(fl.Arg(0), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	buf := make([]byte, *n)
	_, _ = chacha(*seed).Read(buf)
	if _, err := f.WriteAt(buf, st.Size()/2); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
