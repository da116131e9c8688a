package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// startDaemon starts cmd, a daemon writing its log to dir/<name>.log, and
// waits up to a minute until ready succeeds. When the test ends, beforeStop
// runs (if any), the daemon gets SIGTERM (SIGKILL after 30s), whatever is
// still mounted below dir is detached, and dir is removed.
func startDaemon(t testing.TB, name, dir string, cmd *exec.Cmd, ready func() error, beforeStop func()) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a Ctrl-C on `go test` does not race the cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(dir)
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if beforeStop != nil {
			beforeStop()
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		// A clean stop unmounts the daemon's layers; a killed one leaves them.
		unmountBelow(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing %s dir: %v", name, err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ready() == nil {
			return
		}
		select {
		case werr := <-exited:
			exited <- werr // let the cleanup see it too
			t.Fatalf("%s exited during startup (%v); log:\n%s", name, werr, readTail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within 60s; log:\n%s", name, readTail(logPath))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
