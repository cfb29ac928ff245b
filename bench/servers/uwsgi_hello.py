# The end-to-end bench's handler for real uWSGI (nginx uwsgi_pass -> uWSGI): hello world,
# and POST echoes the body, as bench/servers/hello-handler.mjs does for ferry.
def application(environ, start_response):
    if environ.get('REQUEST_METHOD') == 'POST':
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length)
        start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', str(len(body)))])
        return [body]
    start_response('200 OK', [('Content-Type', 'text/plain;charset=UTF-8'), ('Content-Length', '11')])
    return [b'hello world']
