package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
)

// requestError is a request the gateway refuses before anything is
// reserved, answered 400 in the OpenAI error shape with the field at fault
// in "param" (nothing is charged).
type requestError struct {
	param, code, msg string
}

func (e *requestError) Error() string { return e.code + ": " + e.param + ": " + e.msg }

// badField is the usual refusal of one field's value.
func badField(param, msg string) *requestError {
	return &requestError{param: param, code: "invalid_value", msg: msg}
}

// writeRequestError answers err (a *requestError or a *syntaxError) with 400.
func writeRequestError(w http.ResponseWriter, err error) error {
	var body struct {
		Error struct {
			Code    string  `json:"code"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Message string  `json:"message"`
		} `json:"error"`
	}
	body.Error.Type = "invalid_request_error"
	var re *requestError
	var se *syntaxError
	switch {
	case errors.As(err, &re):
		body.Error.Code, body.Error.Message = re.code, re.msg
		if re.param != "" {
			body.Error.Param = &re.param
		}
	case errors.As(err, &se):
		body.Error.Code, body.Error.Message = "invalid_json", "The request body is not valid JSON as this gateway accepts it: "+se.msg+"."
	default:
		body.Error.Code, body.Error.Message = "invalid_request", "The request could not be read."
	}
	b, _ := json.Marshal(body)
	return writeJSON(w, http.StatusBadRequest, b)
}
