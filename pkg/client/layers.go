package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Layer is one version of a published layer.
type Layer struct {
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	Version     int64     `json:"version"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`     // of the zip
	Unpacked    int64     `json:"unpacked"` // bytes of its files
	Runtimes    []string  `json:"runtimes,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// LayerRef is a layer version a function mounts.
type LayerRef struct {
	Name     string `json:"name"`
	Version  int64  `json:"version"`
	SHA256   string `json:"sha256"`
	Unpacked int64  `json:"unpacked"`
}

func layerPath(name string) string { return "/v1/layers/" + url.PathEscape(name) }

// PublishLayer publishes zip as the next version of layer name, for the
// runtimes given (any, if none).
func (c *Client) PublishLayer(ctx context.Context, name string, zip []byte, runtimes []string, description string) (Layer, error) {
	q := url.Values{}
	for _, rt := range runtimes {
		q.Add("runtime", rt)
	}
	if description != "" {
		q.Set("description", description)
	}
	req, err := c.newRequest(ctx, http.MethodPost, layerPath(name), q, bytes.NewReader(zip))
	if err != nil {
		return Layer{}, err
	}
	req.Header.Set("Content-Type", "application/zip")
	resp, err := c.send(req)
	if err != nil {
		return Layer{}, err
	}
	defer resp.Body.Close()
	var l Layer
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return Layer{}, decodeErr("POST", layerPath(name), err)
	}
	return l, nil
}

// Layers lists the namespace's layer versions, of one name unless name
// is "".
func (c *Client) Layers(ctx context.Context, name string) ([]Layer, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	var out struct {
		Layers []Layer `json:"layers"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/layers", q, nil, &out)
	return out.Layers, err
}

// GetLayer returns version of layer name (0: the latest).
func (c *Client) GetLayer(ctx context.Context, name string, version int64) (Layer, error) {
	p := layerPath(name)
	if version > 0 {
		p += "/versions/" + strconv.FormatInt(version, 10)
	}
	var l Layer
	_, err := c.doJSON(ctx, http.MethodGet, p, nil, nil, &l)
	return l, err
}

// DeleteLayer removes a layer version no function mounts.
func (c *Client) DeleteLayer(ctx context.Context, name string, version int64) error {
	_, err := c.doJSON(ctx, http.MethodDelete, layerPath(name)+"/versions/"+strconv.FormatInt(version, 10), nil, nil, nil)
	return err
}
