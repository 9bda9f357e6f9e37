// Package browser holds the end-to-end tests of the admin console: a real
// headless Chromium, driven with chromedp, against the real tollgate
// binary started with the repository's quick-start Caddyfile (what
// `make run` serves), on a database and a Redis prefix of its own.
//
// It is a package of its own, not part of cmd/tollgate: it shares little
// with cmd/tollgate/logs_test.go (which builds the binary with its own
// config against a test schema), and keeping Chromium out of that
// package lets `make test-browser` run exactly these tests.
//
// One gateway and one browser serve every test (starting them is most of
// the suite's time); each test gets a fresh incognito browser context, so
// no cookie or session leaks from one test to the next.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// world is what every test shares: the stack and the browser.
type world struct {
	stack   *stack
	browser context.Context // a chromedp context whose browser is running
	cancel  []context.CancelFunc
}

var (
	worldOnce sync.Once
	shared    *world
	sharedErr error
)

// theWorld starts the stack and the browser on first use, and fails the
// test (never skips it) when either cannot start.
func theWorld(t *testing.T) *world {
	t.Helper()
	worldOnce.Do(func() { shared, sharedErr = startWorld() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func startWorld() (*world, error) {
	w := &world{}
	// Chromium first: it is the requirement most likely to be missing, and
	// checking it costs nothing.
	chromium, err := chromiumPath()
	if err != nil {
		return nil, err
	}
	if w.stack, err = startStack(); err != nil {
		return nil, errors.Join(errNoStack, err)
	}
	if err := w.startBrowser(chromium); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

// chromiumPath is $TOLLGATE_CHROMIUM or /usr/bin/chromium, when it is an
// executable file.
func chromiumPath() (string, error) {
	path := os.Getenv("TOLLGATE_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("Chromium is not installed at %s, and the browser tests need it: "+
			"run `make test` or `make test-browser` (they install it), or `apt-get install chromium`, "+
			"or set TOLLGATE_CHROMIUM to a Chromium or Chrome binary", path)
	}
	return path, nil
}

// startBrowser starts one headless Chromium for every test.
func (w *world) startBrowser(chromium string) error {
	dataDir, err := os.MkdirTemp(w.stack.scratch, "chromium-")
	if err != nil {
		return err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dataDir),
		chromedp.WindowSize(desktopWidth, desktopHeight),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	w.cancel = append(w.cancel, cancelAlloc, cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil { // starts the browser, bound to no timeout
		return fmt.Errorf("start Chromium (%s): %v", chromium, err)
	}
	w.browser = browserCtx
	return nil
}

func (w *world) stop() {
	for i := len(w.cancel) - 1; i >= 0; i-- {
		w.cancel[i]()
	}
	if w.stack != nil {
		w.stack.stop()
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}
