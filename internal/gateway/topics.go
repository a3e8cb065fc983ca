package gateway

import (
	"io"
	"net/http"

	"nimbus/internal/model"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

func (g *Gateway) listTopics(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"topics": wire.List(g.svc.Topics(callerNS(r.Context())), wire.Topic)})
}

func (g *Gateway) getTopic(w http.ResponseWriter, r *http.Request) {
	t, err := g.svc.Topic(callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Topic(t))
}

// putTopic creates a topic or changes its description (see
// service.PutTopic): 201 when it is new.
func (g *Gateway) putTopic(w http.ResponseWriter, r *http.Request) {
	var t client.Topic
	if err := decodeStrict(w, r, &t, 64<<10, "topic"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := nameFromPath("topic", &t.Name, r.PathValue("name"), dnsLabelRe, dnsLabelRule); err != nil {
		writeError(w, g.log, err)
		return
	}
	stored, created, err := g.svc.PutTopic(r.Context(), callerNS(r.Context()), wire.ModelTopic(t))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writePut(w, created, wire.Topic(stored))
}

func (g *Gateway) deleteTopic(w http.ResponseWriter, r *http.Request) {
	t, err := g.svc.DeleteTopic(r.Context(), callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Topic(t))
}

// subscribeTopic subscribes a function to a topic: the body is a
// client.TopicSubscriber. 201 when the subscription is new, 200 when it
// replaced the function's filters.
func (g *Gateway) subscribeTopic(w http.ResponseWriter, r *http.Request) {
	var sub client.TopicSubscriber
	if err := decodeStrict(w, r, &sub, 64<<10, "subscription"); err != nil {
		writeError(w, g.log, err)
		return
	}
	t, created, err := g.svc.SubscribeTopic(r.Context(), callerNS(r.Context()), r.PathValue("name"), wire.ModelTopicSubscriber(sub))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writePut(w, created, wire.Topic(t))
}

func (g *Gateway) unsubscribeTopic(w http.ResponseWriter, r *http.Request) {
	t, err := g.svc.UnsubscribeTopic(r.Context(), callerNS(r.Context()), r.PathValue("name"), r.PathValue("function"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Topic(t))
}

// publish publishes the body, a JSON message of at most 256 KB, to a
// topic of the caller's namespace, under the ID of the header
// client.HeaderMessageID if there is one; it answers once the message is
// committed (see service.Publish).
func (g *Gateway) publish(w http.ResponseWriter, r *http.Request) {
	msg, err := io.ReadAll(http.MaxBytesReader(w, r.Body, model.MaxTopicMessage))
	if err != nil {
		writeError(w, g.log, bodyError(err, "reading the message"))
		return
	}
	res, err := g.svc.Publish(r.Context(), callerNS(r.Context()), r.PathValue("name"), r.Header.Get(client.HeaderMessageID), msg)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, client.Published{MessageID: res.MessageID, Subscribers: res.Subscribers})
}
