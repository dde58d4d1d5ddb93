// Package docker is graylane's Docker backend (backend.type docker).
package docker
