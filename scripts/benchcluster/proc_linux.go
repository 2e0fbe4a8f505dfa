package main

import "syscall"

// childAttr puts a child in its own process group (a terminal's Ctrl-C
// reaches only this process, which then stops the children in order) and
// makes the kernel kill it if this process dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
