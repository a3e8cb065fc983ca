package controlplane

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"nimbus/internal/blob"
	"nimbus/internal/pki"
	"nimbus/internal/rpc"
	"nimbus/internal/rpc/rpcpb"
)

// Heartbeats receives workers' heartbeats (the server's soft view of its
// workers).
type Heartbeats interface {
	Heartbeat(hb *rpcpb.WorkerHeartbeat)
}

// Service is the server side of the internal Control RPC.
type Service struct {
	rpcpb.UnimplementedControlServer
	node    *Node
	apiAddr string
	blobs   *blob.Store
	workers Heartbeats
}

// NewService returns the Control service of node.
func NewService(node *Node, apiAddr string, blobs *blob.Store, workers Heartbeats) *Service {
	return &Service{node: node, apiAddr: apiAddr, blobs: blobs, workers: workers}
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g *grpc.Server) { rpcpb.RegisterControlServer(g, s) }

// workerMethods are the calls a worker's certificate may make; a
// server's may make every call.
var workerMethods = map[string]bool{
	rpcpb.Control_Heartbeat_FullMethodName: true,
	rpcpb.Control_GetBlob_FullMethodName:   true,
}

// AuthInterceptor authorises every internal call by the caller's
// certificate (verified against the cluster CA by the TLS handshake):
// servers may call everything, workers only heartbeat and fetch code.
func (s *Service) AuthInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		role, _, ok := rpc.Caller(ctx)
		switch {
		case !ok:
			return nil, status.Error(codes.Unauthenticated, "internal RPC needs a certificate of the cluster CA")
		case role == pki.RoleServer, role == pki.RoleWorker && workerMethods[info.FullMethod]:
			return h(ctx, req)
		}
		return nil, status.Errorf(codes.PermissionDenied, "a %s may not call %s", role, info.FullMethod)
	}
}

func (s *Service) Apply(ctx context.Context, req *rpcpb.ApplyRequest) (*rpcpb.ApplyResponse, error) {
	return s.node.ApplyForwarded(ctx, req), nil
}

func (s *Service) ServerInfo(ctx context.Context, _ *rpcpb.ServerInfoRequest) (*rpcpb.ServerInfoResponse, error) {
	role, term, last := s.node.Self()
	return &rpcpb.ServerInfoResponse{
		Id: s.node.ID(), RaftAddress: s.node.RaftAddr(), ApiAddress: s.apiAddr,
		LeaderId: s.node.LeaderID(), Bootstrapped: s.node.HasState(),
		Role: role, Term: term, LastIndex: last, Members: s.node.Members(),
	}, nil
}

func (s *Service) Join(ctx context.Context, req *rpcpb.JoinRequest) (*rpcpb.JoinResponse, error) {
	if req.Id == "" || req.RaftAddress == "" {
		return nil, status.Error(codes.InvalidArgument, "join needs an id and a raft address")
	}
	err := s.node.AddServer(Peer{ID: req.Id, Raft: req.RaftAddress}, !req.Nonvoter)
	if errors.Is(err, ErrNotLeader) {
		return nil, status.Error(codes.FailedPrecondition, "not the leader: "+s.node.LeaderID())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &rpcpb.JoinResponse{}, nil
}

func (s *Service) Leave(ctx context.Context, req *rpcpb.LeaveRequest) (*rpcpb.LeaveResponse, error) {
	err := s.node.RemoveServer(req.Id)
	if errors.Is(err, ErrNotLeader) {
		return nil, status.Error(codes.FailedPrecondition, "not the leader: "+s.node.LeaderID())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &rpcpb.LeaveResponse{}, nil
}

func (s *Service) PutBlob(ctx context.Context, req *rpcpb.PutBlobRequest) (*rpcpb.PutBlobResponse, error) {
	d, err := s.blobs.Put(req.Data)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &rpcpb.PutBlobResponse{Digest: d}, nil
}

func (s *Service) GetBlob(ctx context.Context, req *rpcpb.GetBlobRequest) (*rpcpb.GetBlobResponse, error) {
	b, err := s.blobs.Get(ctx, req.Digest)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &rpcpb.GetBlobResponse{Data: b}, nil
}

func (s *Service) Heartbeat(ctx context.Context, hb *rpcpb.WorkerHeartbeat) (*rpcpb.HeartbeatResponse, error) {
	if hb.WorkerId == "" || hb.Address == "" || strings.ContainsAny(hb.WorkerId, " \n") {
		return nil, status.Error(codes.InvalidArgument, "a heartbeat needs a worker id and an address")
	}
	if role, name, _ := rpc.Caller(ctx); role == pki.RoleWorker && name != hb.WorkerId {
		return nil, status.Errorf(codes.PermissionDenied, "worker %s may not heartbeat as %s", name, hb.WorkerId)
	}
	s.workers.Heartbeat(hb)
	return &rpcpb.HeartbeatResponse{ServerId: s.node.ID()}, nil
}

// ReadIndex answers a follower's consistent read with this leader's
// commit index; FailedPrecondition when this server does not lead.
func (s *Service) ReadIndex(ctx context.Context, _ *rpcpb.ReadIndexRequest) (*rpcpb.ReadIndexResponse, error) {
	index, err := s.node.ReadIndex(ctx)
	if errors.Is(err, ErrNotLeader) {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &rpcpb.ReadIndexResponse{Index: index}, nil
}
