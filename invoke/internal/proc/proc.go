// Package proc starts handler processes in their own process group, so that
// a timeout or a shutdown stops the handler and everything it started.
package proc

import (
	"errors"
	"os/exec"
	"syscall"
)

// Prepare makes cmd start in a new process group that the kernel kills when
// esmd dies.
func Prepare(cmd *exec.Cmd) {
	cmd.SysProcAttr = sysProcAttr()
}

// Signal sends sig to the process group of cmd, which must have been
// started after Prepare. A group that is already gone is not an error.
func Signal(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
