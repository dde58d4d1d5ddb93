module github.com/graylane/graylane/testsupport/sshdtest/hostapp

go 1.26
