// Package browsertest runs the web console's pages in a real headless
// Chromium for tests: it starts the browser, records what went wrong in
// the page (exceptions, console errors, Content-Security-Policy
// violations, failed loads), runs the axe-core accessibility checks and
// takes screenshots that must not be blank.
//
// Usage, in a test that serves the console from httptest:
//
//	ctx := browsertest.New(t) // skips when no Chromium is installed
//	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/ui/")); err != nil {
//		t.Fatal(err)
//	}
//	vs, err := browsertest.Axe(ctx) // skips when axe-core is not installed
//	...
//	if got := browsertest.Serious(vs); len(got) > 0 { t.Errorf(...) }
//	if p := browsertest.Problems(ctx); len(p) > 0 { t.Errorf(...) }
//	if err := browsertest.Screenshot(ctx, path); err != nil { t.Error(err) }
//
// Chromium is Debian's (scripts/deps installs it), or the binary named by
// $NIMBUS_CHROMIUM. The console's built assets and axe-core come from
// scripts/ui-vendor; RequireDist skips a test when they are not built.
package browsertest
