package upgrade_test

import (
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkMigrate measures the migration of 10,000 version-0 records of
// about 1 KiB (a rollout record's size) on embedded etcd with fsync, as a
// graylane raising a version does: per record one compare-and-swap,
// eight at a time. One op is the whole collection.
func BenchmarkMigrate(b *testing.B) {
	testenv.IntegrationTest(b)
	ctx := context.Background()
	cli := etcdtest.Start(b, etcdtest.WithFsync()).Client()
	const n = 10000
	pad := make([]byte, 1000)
	for i := range pad {
		pad[i] = 'x'
	}
	c := collections()[0]
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := cli.Delete(ctx, recPrefix, clientv3.WithPrefix()); err != nil {
			b.Fatal(err)
		}
		ops := make([]clientv3.Op, 0, 100)
		for i := range n {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sapp-%05d", recPrefix, i), fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)))
			if len(ops) == cap(ops) {
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					b.Fatal(err)
				}
				ops = ops[:0]
			}
		}
		b.StartTimer()
		st, err := upgrade.Migrate(ctx, cli, c, 1, nil)
		if err != nil || st.Migrated != n {
			b.Fatalf("%+v, %v", st, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
