package testenv_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/graylane/graylane/testsupport/testenv"
)

const module = "github.com/graylane/graylane"

// seeds are calls that start a real server or program although they do
// not go through testenv.AssertIntegrationTest: the Apollo test server
// uses the standard library only, and a test that runs a program itself.
var seeds = map[string]bool{
	module + "/testsupport/testenv.AssertIntegrationTest": true,
	module + "/testsupport/apolloserver.New":              true,
	module + "/internal/etcdserver.Start":                 true,
	"os/exec.Command":                                     true,
	"os/exec.CommandContext":                              true,
}

// TestIntegrationMarkers is the static half of the integration marker
// (docs/testing.md): every Test, Benchmark and Fuzz function that can reach
// a real server or program — a call to testenv.AssertIntegrationTest (which
// every server helper makes), apolloserver.New or os/exec, directly or
// through helpers in test files and test-support packages — must begin
// with testenv.IntegrationTest. It also keeps embedded etcd behind
// etcdtest.Start. It reads the source only, so it catches a test that
// forgets the marker even where that test never runs.
func TestIntegrationMarkers(t *testing.T) {
	root := testenv.RepoRoot(t)
	a := newAnalysis()
	if err := a.load(root); err != nil {
		t.Fatal(err)
	}
	a.propagate()
	problems := a.check()
	for _, p := range problems {
		t.Error(p)
	}
	if a.tests < 100 {
		t.Fatalf("found only %d test functions under %s: the scan is broken", a.tests, root)
	}
	t.Logf("%d test functions checked, %d reach a real server", a.tests, a.marked)
}

// fn is one function or method declared in an analysed file.
type fn struct {
	key   string // importPath.Name, or importPath.*Method for methods
	pos   token.Position
	decl  *ast.FuncDecl
	calls []string // keys of what it calls or references
	// starts is the call chain to a seed, empty when none is reachable.
	starts []string
	isTest bool
}

type analysis struct {
	fset   *token.FileSet
	funcs  map[string]*fn
	byPkg  map[string][]*fn
	tests  int
	marked int
	misuse []string
}

func newAnalysis() *analysis {
	return &analysis{fset: token.NewFileSet(), funcs: map[string]*fn{}, byPkg: map[string][]*fn{}}
}

// helperPackage reports whether the non-test files of the package at rel
// (slash-separated, relative to the root) are test support: their
// functions pass "starts a server" on to their callers.
func helperPackage(rel string) bool {
	return strings.HasPrefix(rel, "testsupport/") || strings.HasSuffix(filepath.Base(rel), "test")
}

func (a *analysis) load(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || rel == "tools" || rel == "bin") {
				return filepath.SkipDir
			}
			if rel != "." {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir // a nested module
				}
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		isTest := strings.HasSuffix(p, "_test.go")
		dir := filepath.ToSlash(filepath.Dir(rel))
		if !isTest && !helperPackage(dir) {
			return nil
		}
		f, err := parser.ParseFile(a.fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := module
		if dir != "." {
			pkg += "/" + dir
		}
		if isTest && strings.HasSuffix(f.Name.Name, "_test") {
			pkg += "_test"
		}
		a.addFile(pkg, dir, f, isTest)
		return nil
	})
}

func (a *analysis) addFile(pkg, dir string, f *ast.File, isTest bool) {
	imports := map[string]string{} // local name -> path
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		name := filepath.Base(path)
		if im.Name != nil {
			name = im.Name.Name
		} else if strings.HasPrefix(name, "v") && strings.Contains(path, "/") {
			if _, err := strconv.Atoi(name[1:]); err == nil { // .../v3
				name = filepath.Base(filepath.Dir(path))
			}
		}
		imports[name] = path
	}
	base := strings.TrimSuffix(pkg, "_test")
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		key := pkg + "." + fd.Name.Name
		if fd.Recv != nil {
			key = pkg + ".*" + fd.Name.Name
		}
		x := &fn{key: key, pos: a.fset.Position(fd.Pos()), decl: fd, isTest: isTest}
		var visit func(n ast.Node) bool
		visit = func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok {
					if path, ok := imports[id.Name]; ok {
						x.calls = append(x.calls, path+"."+n.Sel.Name)
						if isTest && path == module+"/internal/etcdserver" && n.Sel.Name == "Start" &&
							dir != "internal/etcdserver" && dir != "testsupport/etcdtest" {
							a.misuse = append(a.misuse, fmt.Sprintf("%s: etcdserver.Start in a test: use etcdtest.Start, the one embedded-etcd helper", a.fset.Position(n.Pos())))
						}
						return false
					}
				}
				// A method of this package (any receiver: a conservative guess).
				x.calls = append(x.calls, pkg+".*"+n.Sel.Name, base+".*"+n.Sel.Name)
				ast.Inspect(n.X, visit)
				return false
			case *ast.Ident:
				// A call of, or a reference to, a function of this package.
				x.calls = append(x.calls, pkg+"."+n.Name, base+"."+n.Name)
			}
			return true
		}
		ast.Inspect(fd.Body, visit)
		a.funcs[key] = x
		a.byPkg[pkg] = append(a.byPkg[pkg], x)
	}
}

// propagate computes, for every function, a chain of calls to a seed.
func (a *analysis) propagate() {
	for changed := true; changed; {
		changed = false
		for _, f := range a.funcs {
			if f.starts != nil {
				continue
			}
			for _, c := range f.calls {
				if seeds[c] {
					f.starts = []string{short(c)}
					changed = true
					break
				}
				if g := a.funcs[c]; g != nil && g != f && g.starts != nil && !isMarker(c) {
					f.starts = append([]string{short(c)}, g.starts...)
					changed = true
					break
				}
			}
		}
	}
}

func isMarker(key string) bool { return key == module+"/testsupport/testenv.IntegrationTest" }

func short(key string) string {
	key = strings.TrimPrefix(key, module+"/")
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		key = key[i+1:]
	}
	return strings.Replace(key, "_test.", ".", 1)
}

func (a *analysis) check() []string {
	problems := append([]string(nil), a.misuse...)
	for _, f := range a.funcs {
		if !f.isTest || f.decl.Recv != nil || !isTestFunc(f.decl) {
			continue
		}
		a.tests++
		if f.starts == nil {
			continue
		}
		a.marked++
		if !firstIsMarker(f.decl) {
			problems = append(problems, fmt.Sprintf("%s: %s reaches a real server (%s) but does not begin with testenv.IntegrationTest(%s)",
				f.pos, f.decl.Name.Name, strings.Join(f.starts, " -> "), paramName(f.decl)))
		}
	}
	sort.Strings(problems)
	return problems
}

func isTestFunc(d *ast.FuncDecl) bool {
	n := d.Name.Name
	for _, p := range []string{"Test", "Benchmark", "Fuzz"} {
		if strings.HasPrefix(n, p) && (len(n) == len(p) || !isLower(n[len(p)])) {
			return n != "TestMain" && d.Type.Params != nil && len(d.Type.Params.List) == 1
		}
	}
	return false
}

func isLower(b byte) bool { return b >= 'a' && b <= 'z' }

func paramName(d *ast.FuncDecl) string {
	if ps := d.Type.Params.List; len(ps) == 1 && len(ps[0].Names) == 1 {
		return ps[0].Names[0].Name
	}
	return "t"
}

// firstIsMarker reports whether the body begins with
// testenv.IntegrationTest(<the test's parameter>).
func firstIsMarker(d *ast.FuncDecl) bool {
	if len(d.Body.List) == 0 {
		return false
	}
	es, ok := d.Body.List[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := es.X.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "IntegrationTest" {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	arg, ok2 := call.Args[0].(*ast.Ident)
	return ok && ok2 && pkg.Name == "testenv" && arg.Name == paramName(d)
}
