package local

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/scan"
	"golang.org/x/sys/unix"
)

// TestTempOwnerZombie: the temporary file of a process that has exited
// but was not reaped (a zombie) belongs to a dead run; a live process's
// does not.
func TestTempOwnerZombie(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	pid := child.Process.Pid
	defer child.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for !archive.Zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d did not become a zombie", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if name := fmt.Sprintf("%s%d-1-2", scan.TempPrefix, pid); !tempOwnerDead(unix.AT_FDCWD, name) {
		t.Errorf("%s: the owner is a zombie, so dead", name)
	}
	if name := fmt.Sprintf("%s%d-1-2", scan.TempPrefix, os.Getppid()); tempOwnerDead(unix.AT_FDCWD, name) {
		t.Errorf("%s: the owner (this test's parent) is alive", name)
	}
}

// TestTempOwnerPidReused: a temporary file whose owner's pid now belongs
// to a process that started after the file last changed is a leftover; one
// changed after its owner started is not.
func TestTempOwnerPidReused(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	defer child.Wait()
	defer child.Process.Kill()
	pid := child.Process.Pid
	if !startedAfter(pid, time.Now().Add(-time.Hour)) {
		t.Errorf("a process started just now did not start after a file changed an hour ago")
	}
	if startedAfter(pid, time.Now()) {
		t.Errorf("a process started just now started after a file changed now")
	}
	if startedAfter(pid, time.Now().Add(-30*time.Second)) {
		t.Errorf("a file changed 30 s before its owner started counts as another's (the slack is %v)", tempReuseSlack)
	}
	// A live owner's file, changed after it started, stays.
	dir := t.TempDir()
	name := fmt.Sprintf("%s%d-1-2", scan.TempPrefix, pid)
	if err := os.WriteFile(dir+"/"+name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if tempOwnerDead(fd, name) {
		t.Errorf("%s: the owner is alive and started before the file was written", name)
	}
}
