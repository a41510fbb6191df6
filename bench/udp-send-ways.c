// Five ways to send the same datagrams on loopback, for the media plane's send design
// (docs/architecture.md, "Batched sends"). Each round sends 2 datagrams of 1100 bytes to each
// of 4 receivers, as a receive batch in a 5-person room would; the receivers are drained
// every 64 rounds. Prints datagrams per CPU second of this process (which, on loopback, also
// pays the receivers' delivery).
//
//   gcc -O2 -o /tmp/udp-send-ways bench/udp-send-ways.c
//   for m in 0 1 2 3 4; do /tmp/udp-send-ways $m 100000; done
//
// 0: send() per datagram on sockets connected to each receiver (the plane before batching)
// 1: one sendmmsg on an unconnected socket, one message per datagram
// 2: one sendmmsg per connected socket
// 3: one sendmmsg on an unconnected socket, one GSO message per receiver (what the plane does)
// 4: one GSO sendmsg per connected socket
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/resource.h>
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define NDEST 4
#define PER 2
#define SZ 1100
static double cpu(void){struct rusage r;getrusage(RUSAGE_SELF,&r);return r.ru_utime.tv_sec+r.ru_stime.tv_sec+(r.ru_utime.tv_usec+r.ru_stime.tv_usec)/1e6;}
int main(int argc,char**argv){
  if(argc<3||atoi(argv[1])<0||atoi(argv[1])>4){fprintf(stderr,"usage: %s MODE(0-4) ROUNDS\n",argv[0]);return 2;}
  int mode=atoi(argv[1]); long iters=atol(argv[2]);
  struct sockaddr_in dst[NDEST]; int rx[NDEST];
  for(int i=0;i<NDEST;i++){rx[i]=socket(AF_INET,SOCK_DGRAM,0);struct sockaddr_in a={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000001)};bind(rx[i],(void*)&a,sizeof a);socklen_t l=sizeof dst[i];getsockname(rx[i],(void*)&dst[i],&l);}
  int one=1;
  int lis=socket(AF_INET,SOCK_DGRAM,0);setsockopt(lis,SOL_SOCKET,SO_REUSEPORT,&one,4);
  struct sockaddr_in b={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000001),.sin_port=htons(23456)};
  if(bind(lis,(void*)&b,sizeof b)){perror("bind");return 1;}
  int con[NDEST];
  for(int i=0;i<NDEST;i++){con[i]=socket(AF_INET,SOCK_DGRAM,0);setsockopt(con[i],SOL_SOCKET,SO_REUSEPORT,&one,4);bind(con[i],(void*)&b,sizeof b);connect(con[i],(void*)&dst[i],sizeof dst[i]);}
  char buf[PER][SZ]; memset(buf,1,sizeof buf);
  struct mmsghdr m[NDEST*PER]; struct iovec iov[NDEST*PER];
  char cbuf[NDEST][CMSG_SPACE(sizeof(uint16_t))] __attribute__((aligned(8)));
  double t0=cpu(); long pk=0;
  for(long it=0;it<iters;it++){
    if(mode==0){ for(int d=0;d<NDEST;d++)for(int p=0;p<PER;p++){send(con[d],buf[p],SZ,0);pk++;} }
    else if(mode==1){ int n=0; for(int d=0;d<NDEST;d++)for(int p=0;p<PER;p++){iov[n]=(struct iovec){buf[p],SZ};m[n].msg_hdr=(struct msghdr){.msg_name=&dst[d],.msg_namelen=sizeof dst[d],.msg_iov=&iov[n],.msg_iovlen=1};n++;} pk+=sendmmsg(lis,m,n,0);}
    else if(mode==2){ for(int d=0;d<NDEST;d++){int n=0;for(int p=0;p<PER;p++){iov[n]=(struct iovec){buf[p],SZ};m[n].msg_hdr=(struct msghdr){.msg_iov=&iov[n],.msg_iovlen=1};n++;} pk+=sendmmsg(con[d],m,n,0);} }
    else if(mode==3){ for(int d=0;d<NDEST;d++){ for(int p=0;p<PER;p++)iov[d*PER+p]=(struct iovec){buf[p],SZ};
        m[d].msg_hdr=(struct msghdr){.msg_name=&dst[d],.msg_namelen=sizeof dst[d],.msg_iov=&iov[d*PER],.msg_iovlen=PER,.msg_control=cbuf[d],.msg_controllen=sizeof cbuf[d]};
        struct cmsghdr*c=CMSG_FIRSTHDR(&m[d].msg_hdr);c->cmsg_level=SOL_UDP;c->cmsg_type=UDP_SEGMENT;c->cmsg_len=CMSG_LEN(2);*(uint16_t*)CMSG_DATA(c)=SZ;}
      int r=sendmmsg(lis,m,NDEST,0); if(r<0){perror("gso");return 1;} pk+=r*PER; }
    else if(mode==4){ for(int d=0;d<NDEST;d++){ for(int p=0;p<PER;p++)iov[p]=(struct iovec){buf[p],SZ};
        struct msghdr h={.msg_iov=iov,.msg_iovlen=PER,.msg_control=cbuf[0],.msg_controllen=sizeof cbuf[0]};
        struct cmsghdr*c=CMSG_FIRSTHDR(&h);c->cmsg_level=SOL_UDP;c->cmsg_type=UDP_SEGMENT;c->cmsg_len=CMSG_LEN(2);*(uint16_t*)CMSG_DATA(c)=SZ;
        if(sendmsg(con[d],&h,0)<0){perror("gso2");return 1;} pk+=PER;} }
    if((it&63)==0) for(int d=0;d<NDEST;d++){ while(recv(rx[d],buf[0],1,MSG_DONTWAIT|MSG_TRUNC)>=0); } // keep queues from filling
  }
  double t=cpu()-t0;
  const char*names[]={"connected send() each","unconnected sendmmsg all","connected sendmmsg per dest","unconnected sendmmsg+GSO","connected sendmsg+GSO per dest"};
  printf("%-34s %8.0f pkt/CPU-s (incl. draining receivers)\n",names[mode],pk/t);
  return 0;}
