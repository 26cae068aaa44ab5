"""Fidelity: the sandbox refuses what AWS refuses, where moto would accept it.

A WSGI middleware (`middleware.FidelityMiddleware`) sits in front of moto's app in the sandbox
server process: it parses each request (service, action, account, caller), runs the fidelity
rules registered for that operation (`registry.rule`), and answers a refusal in AWS's shape
(S3 or EC2 XML, JSON `__type`, query XML) with AWS's status and error code; requests no rule
refuses go on to moto. Extra operations that moto lacks are served the same way
(`registry.operation`). Every rule cites the AWS document that states it, and
tests/engines/sandbox/test_fidelity.py proves each refusal (its meta-test fails for a rule
without a case).
"""
