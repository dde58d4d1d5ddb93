package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/configrelease"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/backup"
	"github.com/graylane/graylane/internal/etcdserver"
	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/records"
)

// backupCommands are `graylane backup` and `graylane restore`: graylane's
// state in etcd to a file and back (internal/backup, docs/install.md).
func backupCommands() []*cobra.Command {
	return []*cobra.Command{newBackup(), newRestore()}
}

func stateFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("config", "", "graylane's config file (for etcd.* and data.dir); env GRAYLANE_CONFIG")
	f.String("etcd.endpoints", "", "etcd endpoints (default: from the config; empty there: the embedded etcd)")
	f.String("data.dir", "", "data directory of an embedded etcd")
	f.StringSlice("prefix", nil, "key prefix to include (repeatable; default: /graylane/ and every configured graylane prefix)")
}

func newBackup() *cobra.Command {
	v := viper.New()
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Copy graylane's state (every key under its etcd prefixes, at one revision) to a file",
		Long: `Copy graylane's state out of etcd: release specs (with source.type etcd),
rollout state, analysis journals, config-in-step history and intents, gray
documents. Keys bound to a lease (leader, locks, registrations) are left out.
Safe while graylane runs. With the embedded etcd, graylane must be running
(the backup reads its etcd at etcd.embedded.clientAddr).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := loadConfig(v, cmd); err != nil {
				return &exitError{code: 2, err: err}
			}
			out, _ := cmd.Flags().GetString("output")
			prefixes, _ := cmd.Flags().GetStringSlice("prefix")
			return runBackup(cmd.Context(), v, out, prefixes, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	stateFlags(cmd)
	cmd.Flags().StringP("output", "o", "-", "archive file (- for stdout)")
	return cmd
}

func newRestore() *cobra.Command {
	v := viper.New()
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Write a backup into a fresh etcd; a graylane started on it resumes the releases",
		Long: `Write a graylane backup into etcd. Stop graylane first. The target must hold
no key under the archive's prefixes (a fresh etcd) unless --overwrite.
Rollout state is written before release specs. With the embedded etcd
(etcd.endpoints empty) the restore opens data.dir/etcd itself, so graylane
must be stopped; start it afterwards and the releases resume.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := loadConfig(v, cmd); err != nil {
				return &exitError{code: 2, err: err}
			}
			in, _ := cmd.Flags().GetString("input")
			overwrite, _ := cmd.Flags().GetBool("overwrite")
			return runRestore(cmd.Context(), v, in, overwrite, cmd.ErrOrStderr())
		},
	}
	stateFlags(cmd)
	cmd.Flags().StringP("input", "i", "", "archive file (- for stdin)")
	cmd.Flags().Bool("overwrite", false, "replace keys that already exist instead of refusing")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func getOr(v *viper.Viper, key, def string) string {
	if s := v.GetString(key); s != "" {
		return s
	}
	return def
}

// statePrefixes lists /graylane/ and every configured prefix outside it,
// each once (a prefix inside another is dropped).
func statePrefixes(v *viper.Viper) []string {
	cand := []string{
		"/graylane/",
		getOr(v, "etcd.prefix", etcdsource.DefaultPrefix),
		v.GetString("etcd.statePrefix"),
		v.GetString("etcd.analysisPrefix"),
		getOr(v, "config.prefix", configrelease.DefaultPrefix),
		getOr(v, "gray.etcd.prefix", gray.DefaultRulesPrefix),
		getOr(v, "records.prefix", records.DefaultPrefix),
		getOr(v, "audit.prefix", audit.DefaultPrefix),
		getOr(v, "upgrade.prefix", upgrade.DefaultPrefix), // the storage schema versions (member records are lease-bound: left out)
	}
	var out []string
	for _, p := range cand {
		if p == "" {
			continue
		}
		covered := false
		for _, q := range cand {
			if q != "" && q != p && strings.HasPrefix(p, q) {
				covered = true
			}
		}
		for _, q := range out {
			covered = covered || q == p
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

// stateClient connects to graylane's etcd: etcd.endpoints (with etcd.tls),
// else the embedded etcd's client address.
func stateClient(v *viper.Viper) (*clientv3.Client, error) {
	endpoints := list(v, "etcd.endpoints")
	if len(endpoints) == 0 {
		endpoints = []string{"http://" + v.GetString("etcd.embedded.clientAddr")}
	}
	cfg, err := etcdClientConfig(v, endpoints)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return cli, nil
}

func runBackup(ctx context.Context, v *viper.Viper, out string, prefixes []string, stdout, stderr io.Writer) error {
	if len(prefixes) == 0 {
		prefixes = statePrefixes(v)
	}
	cli, err := stateClient(v)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer cli.Close()
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	a, err := backup.Take(tctx, cli, prefixes, time.Now())
	if err != nil {
		return fmt.Errorf("%w (is etcd at %v reachable? with the embedded etcd, graylane must be running)", err, cli.Endpoints())
	}
	if out == "-" {
		if err := a.Write(stdout); err != nil {
			return err
		}
	} else if err := writeFileAtomic(out, a); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "backup: %d keys under %s at etcd revision %d (%d lease-bound keys left out) -> %s\n",
		len(a.Entries), strings.Join(a.Prefixes, ", "), a.Revision, a.Skipped, out)
	return nil
}

// writeFileAtomic writes the archive (mode 0600: it holds graylane's state)
// next to out and renames it into place.
func writeFileAtomic(out string, a *backup.Archive) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := a.Write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return os.Rename(tmp.Name(), out)
}

func runRestore(ctx context.Context, v *viper.Viper, in string, overwrite bool, stderr io.Writer) error {
	var r io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--input: %w", err)}
		}
		defer f.Close()
		r = f
	}
	a, err := backup.Read(r)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	var cli *clientv3.Client
	if len(list(v, "etcd.endpoints")) == 0 {
		// the embedded etcd: open its data directory ourselves
		dir, err := filepath.Abs(filepath.Join(v.GetString("data.dir"), "etcd"))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("data.dir: %w", err)
		}
		srv, err := etcdserver.Start(ctx, etcdserver.Config{
			Dir:        dir,
			ClientAddr: v.GetString("etcd.embedded.clientAddr"),
			PeerAddr:   v.GetString("etcd.embedded.peerAddr"),
		})
		if err != nil {
			return fmt.Errorf("open the embedded etcd in %s (stop graylane first): %w", dir, err)
		}
		defer srv.Close()
		if cli, err = srv.Client(); err != nil {
			return err
		}
	} else if cli, err = stateClient(v); err != nil {
		return &exitError{code: 2, err: err}
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	n, err := backup.Restore(rctx, cli, a, backup.RestoreOptions{
		Overwrite: overwrite,
		Last:      []string{getOr(v, "etcd.prefix", etcdsource.DefaultPrefix)},
	})
	if err != nil {
		if errors.Is(err, backup.ErrNotEmpty) {
			return &exitError{code: 1, err: err}
		}
		return err
	}
	fmt.Fprintf(stderr, "restore: %d keys from a backup of %s (etcd revision %d)\n", n, a.CreatedAt.Format(time.RFC3339), a.Revision)
	return nil
}
