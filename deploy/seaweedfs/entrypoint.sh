#!/bin/sh
# SeaweedFS for the compose layout: the S3 identity comes from the
# environment (S3_ACCESS_KEY, S3_SECRET_KEY), written where weed reads it.
set -eu
umask 077
printf '{"identities":[{"name":"nimbus","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$S3_ACCESS_KEY" "$S3_SECRET_KEY" > /tmp/s3.json
exec weed server -dir=/data -ip.bind=0.0.0.0 -s3 -s3.port=8333 \
    -s3.config=/tmp/s3.json -s3.autoCreateBucket -master.volumeSizeLimitMB=1024
