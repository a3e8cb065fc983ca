// Package console owns the web console's presentation: its HTML
// templates, its stylesheet and the front-end assets that
// scripts/ui-vendor builds into static/dist (htmx, our ES modules, the
// CodeMirror and uPlot chunks), all embedded in the binary, and the
// rendering of a page (Renderer) under a strict Content-Security-Policy.
//
// It holds no state and takes no decisions: the gateway's ui_*.go
// handlers authenticate and authorise each request, call the service
// layer, and hand this package a view (Page) to render. Every string a
// template prints is escaped by html/template; no template emits inline
// script or style, so the policy "default-src 'self'" holds.
package console
