// ttrpc interop peer for test/rpc-interop.test.ts, built at test time against Debian's containerd/ttrpc (the Go
// implementation containerd uses). `server SOCKET` serves a few containerd.task.v2.Task methods; `client SOCKET`
// calls runbox's server and prints what it saw as one JSON object. Messages are encoded by hand with gogo's
// proto.Buffer: the field numbers are those of containerd's shim.proto.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const taskService = "containerd.task.v2.Task"

// rawMessage carries already encoded protobuf bytes through ttrpc's codec.
type rawMessage struct{ bytes []byte }

func (m *rawMessage) Reset()                   { m.bytes = nil }
func (m *rawMessage) String() string           { return fmt.Sprintf("%x", m.bytes) }
func (m *rawMessage) ProtoMessage()            {}
func (m *rawMessage) Marshal() ([]byte, error) { return m.bytes, nil }
func (m *rawMessage) Unmarshal(b []byte) error { m.bytes = append([]byte(nil), b...); return nil }

// fields decodes varint (wire type 0) and length-delimited (wire type 2) fields by number.
func fields(b []byte) (map[uint64]uint64, map[uint64]string) {
	varints, strs := map[uint64]uint64{}, map[uint64]string{}
	buf := proto.NewBuffer(b)
	for {
		key, err := buf.DecodeVarint()
		if err != nil || key == 0 {
			return varints, strs
		}
		switch key & 7 {
		case 0:
			v, _ := buf.DecodeVarint()
			varints[key>>3] = v
		case 2:
			s, _ := buf.DecodeStringBytes()
			strs[key>>3] = s
		default:
			return varints, strs
		}
	}
}

func stringField(number uint64, value string) []byte {
	buf := proto.NewBuffer(nil)
	buf.EncodeVarint(number<<3 | 2)
	buf.EncodeStringBytes(value)
	return buf.Bytes()
}

func varintField(number uint64, value uint64) []byte {
	buf := proto.NewBuffer(nil)
	buf.EncodeVarint(number << 3)
	buf.EncodeVarint(value)
	return buf.Bytes()
}

func serve(path string) error {
	server, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	server.Register(taskService, map[string]ttrpc.Method{
		// ConnectRequest{id=1} → ConnectResponse{shim_pid=1, version=3}; version echoes the id and x-test metadata.
		"Connect": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req rawMessage
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			_, strs := fields(req.bytes)
			md, _ := ttrpc.GetMetadata(ctx)
			version := strs[1] + "|" + strings.Join(md["x-test"], ",")
			return &rawMessage{append(varintField(1, uint64(os.Getpid())), stringField(3, version)...)}, nil
		},
		"Delete": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req rawMessage
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			_, strs := fields(req.bytes)
			return nil, status.Errorf(codes.NotFound, "task %s not found", strs[1])
		},
	})
	listener, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	return server.Serve(context.Background(), listener)
}

type clientReport struct {
	ShimPid       uint64 `json:"shimPid"`
	Version       string `json:"version"`
	DeleteCode    int    `json:"deleteCode"`
	DeleteMessage string `json:"deleteMessage"`
	WaitCode      int    `json:"waitCode"`
	UnknownCode   int    `json:"unknownCode"`
	Concurrent    int    `json:"concurrent"`
}

func call(client *ttrpc.Client, ctx context.Context, method string, req []byte) ([]byte, error) {
	var resp rawMessage
	err := client.Call(ctx, taskService, method, &rawMessage{req}, &resp)
	return resp.bytes, err
}

func runClient(path string) error {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	var report clientReport

	ctx := ttrpc.WithMetadata(context.Background(), ttrpc.MD{"x-test": {"one", "two"}})
	resp, err := call(client, ctx, "Connect", stringField(1, "from-go"))
	if err != nil {
		return fmt.Errorf("Connect: %w", err)
	}
	varints, strs := fields(resp)
	report.ShimPid, report.Version = varints[1], strs[3]

	_, err = call(client, context.Background(), "Delete", stringField(1, "c404"))
	report.DeleteCode, report.DeleteMessage = int(status.Code(err)), status.Convert(err).Message()

	waitCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = call(client, waitCtx, "Wait", stringField(1, "forever"))
	report.WaitCode = int(status.Code(err))
	if err == context.DeadlineExceeded {
		report.WaitCode = int(codes.DeadlineExceeded)
	}

	var unknown rawMessage
	err = client.Call(context.Background(), "no.such.Service", "Nope", &rawMessage{}, &unknown)
	report.UnknownCode = int(status.Code(err))

	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			resp, err := call(client, context.Background(), "Connect", stringField(1, id))
			if _, strs := fields(resp); err == nil && strings.HasPrefix(strs[3], id+"|") {
				mu.Lock()
				report.Concurrent++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(report)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-interop server|client SOCKET")
		os.Exit(2)
	}
	var err error
	if os.Args[1] == "server" {
		err = serve(os.Args[2])
	} else {
		err = runClient(os.Args[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
