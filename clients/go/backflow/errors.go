package backflow

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backflowv1 "github.com/backflow/backflow/clients/go/gen/backflow/v1"
)

// FieldViolation is one wrong field of a request, named by its path (`sync.primary_key`).
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a failed call to the Backflow API: its gRPC code, the server's message, and the
// field violations the server attached (google.rpc.BadRequest) to an INVALID_ARGUMENT, so a
// caller can point at the wrong field of its definition. Use errors.As to get it.
type Error struct {
	Code            codes.Code
	Message         string
	FieldViolations []FieldViolation
	status          *status.Status
}

func (e *Error) Error() string {
	return fmt.Sprintf("backflow: %s: %s", e.Code, e.Message)
}

// GRPCStatus returns the original status, so status.FromError and status.Code still work.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// Violation returns the violation of field, if the server reported one.
func (e *Error) Violation(field string) (FieldViolation, bool) {
	for _, v := range e.FieldViolations {
		if v.Field == field {
			return v, true
		}
	}
	return FieldViolation{}, false
}

// IsCode reports whether err is a Backflow API error with the given code.
func IsCode(err error, code codes.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// fromRPC turns a gRPC call's error into an *Error; other errors pass through.
func fromRPC(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, detail := range st.Details() {
		if bad, ok := detail.(*errdetails.BadRequest); ok {
			for _, v := range bad.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return e
}

// RunFailedError is returned by Wait when the run ended failed or cancelled.
type RunFailedError struct {
	Run *backflowv1.Run
}

func (e *RunFailedError) Error() string {
	state := strings.ToLower(strings.TrimPrefix(e.Run.GetState().String(), "RUN_STATE_"))
	msg := fmt.Sprintf("backflow: run %s ended %s", e.Run.GetName(), state)
	if runErr := e.Run.GetError(); runErr != nil {
		msg += fmt.Sprintf(": %s: %s", runErr.GetCode(), runErr.GetMessage())
	}
	return msg
}
