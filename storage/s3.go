package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Defaults of S3.PartSize and S3.Concurrency. 16 MiB parts keep a 1 GB recording at 64
// parts and the buffers of a streamed upload at 80 MiB; 4 parts in flight fill a loopback
// or LAN link (see BenchmarkS3Upload) without starving the rest of livetape.
const (
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 4
)

// S3 stores objects in a bucket of any S3-compatible server (AWS, MinIO, versitygw…).
//
// Objects smaller than PartSize are read into memory and sent with one PutObject that
// carries their MD5 (Content-MD5), which the server checks, and whose ETag must then be
// that MD5. Larger objects go through the SDK's upload manager in PartSize parts,
// Concurrency at a time; each part carries a CRC32 that the server checks (the SDK adds
// it), and the manager aborts the upload on any error so no partial object appears.
// After either, Put reads the object back with HeadObject and compares its size.
type S3 struct {
	Client *s3.Client
	Bucket string
	// PartSize is the multipart part size in bytes, at least 5 MiB; 0 means
	// DefaultPartSize. Objects below it are uploaded in one request.
	PartSize int64
	// Concurrency is the number of parts uploaded in parallel; 0 means
	// DefaultConcurrency. A streamed (non-file) upload buffers Concurrency+1 parts.
	Concurrency int
}

var (
	_ Store     = (*S3)(nil)
	_ Presigner = (*S3)(nil)
)

// S3Config is what NewS3 needs; it maps the LIVETAPE_S3_* settings.
type S3Config struct {
	// Endpoint is the server's base URL ("http://127.0.0.1:7070"); empty means AWS.
	// Without a scheme, https is assumed.
	Endpoint string
	// Region defaults to us-east-1, which S3-compatible servers accept by default.
	Region string
	Bucket string
	// AccessKey and SecretKey are static credentials; when both are empty the SDK's
	// default chain (AWS_* variables, shared config, instance role) is used.
	AccessKey string
	SecretKey string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY rather than
	// BUCKET.ENDPOINT/KEY: needed by servers reached by IP or without wildcard DNS
	// (MinIO, versitygw).
	PathStyle   bool
	PartSize    int64
	Concurrency int
}

// NewS3 makes an S3 store. It does not touch the network: call EnsureBucket to check
// the settings and create the bucket.
func NewS3(ctx context.Context, c S3Config) (*S3, error) {
	if c.Bucket == "" {
		return nil, errors.New("storage: s3: no bucket")
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return nil, errors.New("storage: s3: access key and secret key go together")
	}
	if c.PartSize != 0 && c.PartSize < manager.MinUploadPartSize {
		return nil, fmt.Errorf("storage: s3: part size %d below the minimum %d", c.PartSize, manager.MinUploadPartSize)
	}
	if c.Concurrency < 0 {
		return nil, fmt.Errorf("storage: s3: negative concurrency %d", c.Concurrency)
	}
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if c.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("storage: s3: load config: %w", err)
	}
	endpoint := c.Endpoint
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = c.PathStyle
		// The SDK checks the CRC of a GetObject body when the server sends one and
		// otherwise logs, on every ranged read and every multipart object, that it
		// could not: noise on stderr, nothing to act on.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &S3{Client: client, Bucket: c.Bucket, PartSize: c.PartSize, Concurrency: c.Concurrency}, nil
}

func (s *S3) partSize() int64 {
	if s.PartSize > 0 {
		return s.PartSize
	}
	return DefaultPartSize
}

func (s *S3) concurrency() int {
	if s.Concurrency > 0 {
		return s.Concurrency
	}
	return DefaultConcurrency
}

// EnsureBucket creates the bucket unless it exists (and is ours). It also proves that
// the endpoint and credentials work, so serve calls it at start.
func (s *S3) EnsureBucket(ctx context.Context) error {
	_, err := s.Client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.Bucket})
	if err == nil {
		return nil
	}
	if !isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("storage: s3: head bucket %q: %w", s.Bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: &s.Bucket}
	if r := s.Client.Options().Region; r != "" && r != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	if _, err := s.Client.CreateBucket(ctx, in); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return nil // created concurrently by another livetape node
		}
		return fmt.Errorf("storage: s3: create bucket %q: %w", s.Bucket, err)
	}
	return nil
}

// Put implements Store. A body that is an io.ReaderAt and io.Seeker (an *os.File) is
// read in place from its current offset, parts in parallel, without buffering.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	if size < 0 {
		return Object{}, fmt.Errorf("storage: put %q: negative size %d", key, size)
	}
	if contentType == "" {
		contentType = defaultContentType(key)
	}
	if size < s.partSize() {
		return s.putSingle(ctx, key, r, size, contentType)
	}
	return s.putMultipart(ctx, key, r, size, contentType)
}

// putSingle sends a small object in one PutObject from memory: a seekable body the SDK
// can sign and resend, and an MD5 computed before sending that the server verifies.
func (s *S3) putSingle(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Object, error) {
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := buf.ReadFrom(&exactReader{r: r, key: key, size: size}); err != nil {
		if ie := (*IntegrityError)(nil); errors.As(err, &ie) {
			return Object{}, ie
		}
		return Object{}, fmt.Errorf("storage: put %q: read: %w", key, err)
	}
	sum := md5.Sum(buf.Bytes())
	out, err := s.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.Bucket,
		Key:           &key,
		Body:          bytes.NewReader(buf.Bytes()),
		ContentLength: aws.Int64(size),
		ContentType:   &contentType,
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
		return Object{}, fmt.Errorf("storage: put %q: %w", key, err)
	}
	want := hex.EncodeToString(sum[:])
	// An ETag that is not an MD5 at all (SSE-KMS on AWS) cannot be compared; the
	// server has checked Content-MD5 in that case.
	if etag := unquote(aws.ToString(out.ETag)); isHexMD5(etag) && etag != want {
		s.deleteBad(key)
		return Object{}, &IntegrityError{Key: key, Field: "md5", Want: want, Got: etag}
	}
	return s.confirm(ctx, key, size, unquote(aws.ToString(out.ETag)))
}

// putMultipart uploads a large object through the upload manager.
func (s *S3) putMultipart(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Object, error) {
	var body io.Reader
	if ra, ok := r.(readerAtSeeker); ok {
		// The manager recognises io.ReaderAt+io.ReadSeeker and reads each part as a
		// section of the file, in parallel and without copying.
		off, err := ra.Seek(0, io.SeekCurrent)
		if err != nil {
			return Object{}, fmt.Errorf("storage: put %q: seek: %w", key, err)
		}
		body = io.NewSectionReader(&exactReaderAt{ra: ra, base: off, size: size, key: key}, 0, size)
	} else {
		// The manager copies each part of a stream into a buffer it can sign and
		// resend; a bare io.Pipe handed to PutObject would fail for want of both.
		body = &exactReader{r: ctxReader{ctx, r}, key: key, size: size}
	}
	up := manager.NewUploader(s.Client, func(u *manager.Uploader) {
		u.PartSize = s.partSize()
		u.Concurrency = s.concurrency()
	})
	out, err := up.Upload(ctx, &s3.PutObjectInput{
		Bucket:      &s.Bucket,
		Key:         &key,
		Body:        body,
		ContentType: &contentType,
	})
	if err != nil {
		if ie := (*IntegrityError)(nil); errors.As(err, &ie) {
			return Object{}, ie
		}
		return Object{}, fmt.Errorf("storage: put %q: multipart upload: %w", key, err)
	}
	etag := unquote(aws.ToString(out.ETag))
	// A multipart ETag is "MD5OFPARTMD5S-PARTS": check at least the part count.
	if i := strings.LastIndexByte(etag, '-'); i >= 0 {
		if n, err := strconv.Atoi(etag[i+1:]); err == nil && n != len(out.CompletedParts) {
			s.deleteBad(key)
			return Object{}, &IntegrityError{Key: key, Field: "parts", Want: fmt.Sprint(len(out.CompletedParts)), Got: fmt.Sprint(n)}
		}
	}
	return s.confirm(ctx, key, size, etag)
}

// confirm reads back what the server stored under key after a successful upload and
// checks that it is the object just written (by ETag) and has its size.
func (s *S3) confirm(ctx context.Context, key string, size int64, etag string) (Object, error) {
	obj, err := s.Stat(ctx, key)
	if err != nil {
		return Object{}, fmt.Errorf("storage: put %q: confirm: %w", key, err)
	}
	if etag != "" && obj.ETag != etag {
		// Another writer replaced (or deleted) the object in between: what is there
		// is not what we sent, so the caller must not drop its copy; the object is
		// the other writer's, so it stays.
		return Object{}, &IntegrityError{Key: key, Field: "etag", Want: etag, Got: obj.ETag}
	}
	if obj.Size != size {
		s.deleteBad(key)
		return Object{}, &IntegrityError{Key: key, Field: "size", Want: fmt.Sprint(size), Got: fmt.Sprint(obj.Size)}
	}
	return obj, nil
}

// deleteBad removes an object that failed verification, so that no reader takes it for
// a good one. Its error is not reported: the verification error matters more, and a
// retried Put replaces the object anyway.
func (s *S3) deleteBad(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: &key})
}

// Open implements Store.
func (s *S3) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Object, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Object{}, err
	}
	if err := checkRange(key, offset, length); err != nil {
		return nil, Object{}, err
	}
	if length == 0 {
		// HTTP ranges cannot name zero bytes.
		obj, err := s.Stat(ctx, key)
		if err != nil {
			return nil, Object{}, err
		}
		if _, err := clampRange(key, offset, length, obj.Size); err != nil {
			return nil, Object{}, err
		}
		return io.NopCloser(strings.NewReader("")), obj, nil
	}
	in := &s3.GetObjectInput{Bucket: &s.Bucket, Key: &key}
	if offset != 0 || length != -1 {
		rng := fmt.Sprintf("bytes=%d-", offset)
		if length > 0 {
			rng += strconv.FormatInt(offset+length-1, 10)
		}
		in.Range = &rng
	}
	out, err := s.Client.GetObject(ctx, in)
	if err != nil {
		return nil, Object{}, fmt.Errorf("storage: open %q: %w", key, mapErr(err))
	}
	size := aws.ToInt64(out.ContentLength)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		// "bytes 0-99/1234": the object's size is after the slash.
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				size = n
			}
		}
	}
	obj := Object{
		Key:         key,
		Size:        size,
		ETag:        unquote(aws.ToString(out.ETag)),
		ModTime:     aws.ToTime(out.LastModified),
		ContentType: aws.ToString(out.ContentType),
	}
	return out.Body, obj, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	out, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.Bucket, Key: &key})
	if err != nil {
		return Object{}, fmt.Errorf("storage: stat %q: %w", key, mapErr(err))
	}
	return Object{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ETag:        unquote(aws.ToString(out.ETag)),
		ModTime:     aws.ToTime(out.LastModified),
		ContentType: aws.ToString(out.ContentType),
	}, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	_, err := s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: &key})
	if err != nil && !errors.Is(mapErr(err), ErrNotFound) {
		return fmt.Errorf("storage: delete %q: %w", key, err)
	}
	return nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("storage: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, Object{
				Key:     aws.ToString(o.Key),
				Size:    aws.ToInt64(o.Size),
				ETag:    unquote(aws.ToString(o.ETag)),
				ModTime: aws.ToTime(o.LastModified),
			})
		}
	}
	// S3 lists in UTF-8 byte order, which is Go's string order; some compatible
	// servers do not, so sort rather than trust them.
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// PresignGet implements Presigner.
func (s *S3) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", fmt.Errorf("storage: presign %q: ttl %v is not positive", key, ttl)
	}
	req, err := s3.NewPresignClient(s.Client).PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: &s.Bucket, Key: &key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("storage: presign %q: %w", key, err)
	}
	return req.URL, nil
}

// readerAtSeeker is what the upload manager reads in parallel without buffering.
type readerAtSeeker interface {
	io.ReaderAt
	io.ReadSeeker
}

// exactReaderAt is the ReaderAt counterpart of exactReader: it exposes size bytes of ra
// from base and fails when ra ends before them (a file truncated since its size was
// taken), instead of letting a short part through.
type exactReaderAt struct {
	ra   io.ReaderAt
	base int64
	size int64
	key  string
}

func (e *exactReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= e.size {
		return 0, io.EOF
	}
	if rest := e.size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := e.ra.ReadAt(p, e.base+off)
	if n == len(p) {
		return n, nil
	}
	if err == io.EOF {
		return n, &IntegrityError{Key: e.key, Field: "size", Want: fmt.Sprint(e.size), Got: fmt.Sprintf("%d (reader ended early)", off+int64(n))}
	}
	return n, err
}

// mapErr wraps ErrNotFound or ErrInvalidRange around the S3 errors that mean them.
func mapErr(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case "InvalidRange":
			return fmt.Errorf("%w: %w", ErrInvalidRange, err)
		case "NoSuchBucket":
			return err // a configuration error, not a missing object
		}
	}
	switch {
	case isStatus(err, http.StatusNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case isStatus(err, http.StatusRequestedRangeNotSatisfiable):
		return fmt.Errorf("%w: %w", ErrInvalidRange, err)
	}
	return err
}

func isStatus(err error, code int) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == code
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

func isHexMD5(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
