package admin

import (
	"errors"
	"net/http"

	"go.uber.org/zap"
)

// csvStream writes a CSV answer while it is being produced. The status,
// the headers and the header row go out with the first record (or at the
// end when there is none), so an error before any record is still a JSON
// error; an error after them aborts the transfer, so a cut-short file
// never looks complete. Cells go through SafeCSVCell.
type csvStream struct {
	w        http.ResponseWriter
	r        *http.Request
	filename string
	header   []string
	cw       *CSVWriter
	started  bool
}

func newCSVStream(w http.ResponseWriter, r *http.Request, filename string, header []string) *csvStream {
	return &csvStream{w: w, r: r, filename: filename, header: header, cw: NewCSVWriter(w)}
}

func (s *csvStream) begin() {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+s.filename+`"`)
	s.w.WriteHeader(http.StatusOK)
	s.cw.Write(s.header)
}

// Write adds one record; it is buffered until Flush or Close.
func (s *csvStream) Write(record []string) error {
	s.begin()
	return s.cw.Write(record)
}

// Flush sends what is buffered to the client (nothing before the first
// record, so that an error can still be a JSON answer).
func (s *csvStream) Flush() error {
	if !s.started {
		return nil
	}
	s.cw.Flush()
	if err := s.cw.Error(); err != nil {
		return err
	}
	if err := http.NewResponseController(s.w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// Close ends the answer once the producer returned err: nil completes the
// file (the header row alone when there was no record); an error before
// the first record is returned for the JSON error answer; one after it
// aborts the transfer, logged as what unless the client left.
func (s *csvStream) Close(log *zap.Logger, what string, err error) error {
	if err == nil {
		s.begin()
		err = s.Flush()
	}
	if err != nil && s.started {
		if s.r.Context().Err() == nil {
			log.Warn(what+" failed mid-stream", zap.Error(err))
		}
		panic(http.ErrAbortHandler)
	}
	return err
}
